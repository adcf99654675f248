"""Digests and quiet hours under a fake wall clock (time-machine), against the Slack
stand-in: the right messages at the right times.

The deliverer runs with its default clock (``datetime.now``), which time-machine moves;
the database timestamps move with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from monitor.delivery import Deliverer
from monitor.digest import DigestSchedule
from monitor.holds import ChannelPolicy, DeliveryPolicy
from monitor.pacing import Pacer
from monitor.quiet import QuietHours, parse_clock
from monitor.store import Store
from notifiers import SlackNotifier
from tests.faults.outbox import store_hits
from tests.support import SlackStandIn

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=BERLIN)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'digest.db'}")
    yield opened
    opened.close()


def run(store: Store, standin: SlackStandIn, policy: DeliveryPolicy) -> None:
    slack = SlackNotifier(name="desk", channel="#desk", token=standin.token,
                          base_url=standin.base_url, mention="@here")
    deliverer = Deliverer(store=store, notifiers={"desk": slack}, instance_id="test:1",
                          policy=policy, pacer=Pacer(scale=0.0))
    asyncio.run(deliverer.deliver_due())


def texts(standin: SlackStandIn) -> list[str]:
    return [m.body["text"] for m in standin.messages]


def test_notifier_digest_sends_one_message_per_schedule(
    store: Store, slack_standin: SlackStandIn
) -> None:
    policy = DeliveryPolicy(channels={
        "desk": ChannelPolicy(digest=DigestSchedule("0 8 * * *", "Europe/Berlin")),
    })
    with time_machine.travel(berlin(2, 7, 30), tick=False) as clock:
        store_hits(store, rule="csto", notifiers=["desk"], keys=["a1", "a2"],
                   now=datetime.now(UTC))
        store_hits(store, rule="quake", notifiers=["desk"], keys=["b1"], now=datetime.now(UTC))
        run(store, slack_standin, policy)
        assert texts(slack_standin) == []

        clock.move_to(berlin(2, 7, 59, 59))
        run(store, slack_standin, policy)
        assert texts(slack_standin) == []

        clock.move_to(berlin(2, 8, 0, 0))
        run(store, slack_standin, policy)
        [digest] = slack_standin.messages
        assert digest.body["text"] == "Digest: 3 matches since 2026-03-02 06:30 UTC"
        sections = [b["text"]["text"] for b in digest.body["blocks"] if b["type"] == "section"]
        # Grouped by rule, each rule with its count, titles as links.
        assert sections[0].startswith("*csto* (2)\n• *<https://news.example/a1")
        assert "Story a2" in sections[0] and "Story b1" not in sections[0]
        assert sections[1].startswith("*quake* (1)\n• *<https://news.example/b1")

        # A hit after the run waits for the next morning.
        clock.move_to(berlin(2, 8, 10))
        store_hits(store, rule="csto", notifiers=["desk"], keys=["a3"], now=datetime.now(UTC))
        run(store, slack_standin, policy)
        clock.move_to(berlin(3, 7, 59))
        run(store, slack_standin, policy)
        assert len(slack_standin.messages) == 1
        clock.move_to(berlin(3, 8, 0, 1))
        run(store, slack_standin, policy)
        assert texts(slack_standin)[1] == "Digest: 1 match since 2026-03-02 07:10 UTC"


def test_a_rule_digest_holds_only_that_rule(store: Store, slack_standin: SlackStandIn) -> None:
    policy = DeliveryPolicy(rule_digests={
        "weekly": DigestSchedule("0 9 * * mon", "Europe/Berlin", rule="weekly"),
    })
    with time_machine.travel(berlin(4, 12, 0), tick=False) as clock:  # a Wednesday
        store_hits(store, rule="weekly", notifiers=["desk"], keys=["w1"],
                   now=datetime.now(UTC))
        store_hits(store, rule="urgent", notifiers=["desk"], keys=["u1"],
                   now=datetime.now(UTC))
        run(store, slack_standin, policy)
        assert [t.split("]")[0] for t in texts(slack_standin)] == ["[urgent"]
        clock.move_to(berlin(9, 9, 0, 0))  # the next Monday
        run(store, slack_standin, policy)
        assert texts(slack_standin)[1] == "Digest: 1 match since 2026-03-04 11:00 UTC"


def test_quiet_hours_hold_all_but_critical_until_the_window_ends(
    store: Store, slack_standin: SlackStandIn
) -> None:
    quiet = QuietHours(start=parse_clock("22:00"), end=parse_clock("06:00"),
                       timezone="Europe/Berlin")
    policy = DeliveryPolicy(channels={"desk": ChannelPolicy(quiet=quiet)})
    with time_machine.travel(berlin(2, 21, 59), tick=False) as clock:
        store_hits(store, rule="evening", notifiers=["desk"], keys=["e1"],
                   now=datetime.now(UTC))
        run(store, slack_standin, policy)
        assert len(slack_standin.messages) == 1  # before the window: at once

        clock.move_to(berlin(2, 23, 0))
        store_hits(store, rule="night", notifiers=["desk"], keys=["n1", "n2"],
                   now=datetime.now(UTC))
        store_hits(store, rule="war", notifiers=["desk"], keys=["c1"], now=datetime.now(UTC),
                   severity="critical")
        run(store, slack_standin, policy)
        # Critical goes through, with the channel's mention in front.
        assert len(slack_standin.messages) == 2
        assert texts(slack_standin)[1].startswith("<!here> [war] Story c1")

        clock.move_to(berlin(3, 5, 59, 59))
        run(store, slack_standin, policy)
        assert len(slack_standin.messages) == 2

        clock.move_to(berlin(3, 6, 0, 0))
        run(store, slack_standin, policy)
        assert len(slack_standin.messages) == 3
        catch_up = slack_standin.messages[2].body
        assert catch_up["text"] == "Quiet hours: 2 matches held"
        assert "Story n1" in str(catch_up["blocks"]) and "Story n2" in str(catch_up["blocks"])

        clock.move_to(berlin(3, 6, 30))
        store_hits(store, rule="morning", notifiers=["desk"], keys=["m1"],
                   now=datetime.now(UTC))
        run(store, slack_standin, policy)
        assert texts(slack_standin)[3].startswith("[morning] Story m1")


@pytest.mark.parametrize(
    ("name", "start", "end", "at", "expected_end"),
    [
        ("inside, before midnight", "22:00", "06:00", berlin(2, 23, 0), berlin(3, 6, 0)),
        ("inside, after midnight", "22:00", "06:00", berlin(3, 1, 0), berlin(3, 6, 0)),
        ("at the start", "22:00", "06:00", berlin(2, 22, 0), berlin(3, 6, 0)),
        ("at the end: outside", "22:00", "06:00", berlin(3, 6, 0), None),
        ("outside", "22:00", "06:00", berlin(3, 12, 0), None),
        ("same-day window", "12:00", "14:00", berlin(3, 13, 0), berlin(3, 14, 0)),
        ("empty window", "12:00", "12:00", berlin(3, 12, 0), None),
        # 29 March 2026: Berlin springs forward at 02:00; the window still ends at 06:00.
        ("across the DST change", "22:00", "06:00", berlin(28, 23, 0), berlin(29, 6, 0)),
    ],
)
def test_quiet_window_end(
    name: str, start: str, end: str, at: datetime, expected_end: datetime | None
) -> None:
    quiet = QuietHours(start=parse_clock(start), end=parse_clock(end), timezone="Europe/Berlin")
    found = quiet.window_end(at.astimezone(UTC))
    assert found == expected_end, name
    if found is not None:
        assert found - at <= timedelta(hours=8)


@pytest.mark.parametrize(
    ("zone", "start", "end", "night"),
    [
        # Clocks go back 03:00 → 02:00 on 25 October 2026: 02:00-03:00 happens twice.
        ("Europe/Berlin", "22:00", "02:30", datetime(2026, 10, 24, 18, tzinfo=UTC)),
        ("Europe/Berlin", "01:45", "02:15", datetime(2026, 10, 24, 18, tzinfo=UTC)),
        # Lord Howe goes back half an hour, 02:00 → 01:30, on 5 April 2026.
        ("Australia/Lord_Howe", "00:00", "01:45", datetime(2026, 4, 4, 10, tzinfo=UTC)),
    ],
)
def test_quiet_window_ends_after_now_when_the_clock_goes_back(
    zone: str, start: str, end: str, night: datetime
) -> None:
    # In the repeated hour the window's end was read as its first occurrence, already
    # past: every alert held then went out at once as its own "catch-up".
    quiet = QuietHours(start=parse_clock(start), end=parse_clock(end), timezone=zone)
    now = night
    inside = 0
    while now < night + timedelta(hours=12):
        found = quiet.window_end(now)
        if found is not None:
            inside += 1
            assert now < found <= now + timedelta(hours=5), (now, found)
        now += timedelta(minutes=5)
    assert inside > 0


@pytest.mark.parametrize(
    ("cron", "zone", "at", "expected"),
    [
        # 29 March 2026, 00:30 in Berlin: clocks spring forward at 02:00 that night.
        ("0 0 * * *", "Europe/Berlin", berlin(29, 0, 30), berlin(30, 0, 0)),
        ("0 0 * * mon", "Europe/Berlin", berlin(25, 12, 0), berlin(30, 0, 0)),
        ("0 0 1 * *", "Europe/Berlin", berlin(29, 0, 30), berlin(31, 0, 0) + timedelta(days=1)),
        ("0 8 * * *", "Europe/Berlin", berlin(29, 0, 30), berlin(29, 8, 0)),
        # Lord Howe springs forward half an hour, 02:00 → 02:30, on 4 October 2026.
        ("0 0 * * *", "Australia/Lord_Howe",
         datetime(2026, 10, 4, 1, 0, tzinfo=ZoneInfo("Australia/Lord_Howe")),
         datetime(2026, 10, 5, 0, 0, tzinfo=ZoneInfo("Australia/Lord_Howe"))),
    ],
)
def test_digest_after_a_spring_forward_night_is_the_next_one_not_a_later_one(
    cron: str, zone: str, at: datetime, expected: datetime
) -> None:
    # APScheduler 3.11 adds the wall-clock distance to the next run as real time, so
    # across the lost hour it overshot midnight and skipped a day (a week, a month).
    assert DigestSchedule(cron, zone).next_run(at.astimezone(UTC)) == expected
