"""Channel faults over real sockets: the real slack-sdk against the Slack stand-in, and
smtplib against aiosmtpd, with the real outbox on a SQLite file.

Timestamps here are lower bounds the code must respect (Retry-After, pacing), never
performance targets.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from monitor.delivery import Backoff, Deliverer
from monitor.holds import ChannelPolicy, DeliveryPolicy
from monitor.store import SENT, Store
from notifiers import EmailNotifier, Notifier, SlackNotifier
from tests.faults.outbox import store_hits
from tests.support import SlackStandIn, SmtpServer

# Faster backoff than production (2 s doubling to 15 min), so the tests take seconds;
# Retry-After is never shortened.
FAST = Backoff(first=timedelta(seconds=0.2), maximum=timedelta(seconds=4))
NO_HOLDS = DeliveryPolicy(channels={}, rule_digests={})
# Clock differences between the stand-in's time.time() and ours: none expected, but a
# timestamp taken after the reply was read can trail the one taken before by a hair.
SLACK = 0.05


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'faults.db'}")
    yield opened
    opened.close()


def drain(store: Store, notifiers: dict[str, Notifier], *, seconds: float = 60) -> None:
    deliverer = Deliverer(
        store=store, notifiers=notifiers, instance_id="test:1", backoff=FAST,
        policy=DeliveryPolicy(channels={name: ChannelPolicy(burst=None) for name in notifiers}),
    )
    asyncio.run(deliverer.drain(deadline=timedelta(seconds=seconds), poll_every=0.05))


def slack(standin: SlackStandIn, channel: str, name: str = "desk") -> SlackNotifier:
    return SlackNotifier(name=name, channel=channel, token=standin.token,
                         base_url=standin.base_url)


def test_slack_429_then_500_then_ok_delivers_each_alert_once_after_retry_after(
    store: Store, slack_standin: SlackStandIn
) -> None:
    slack_standin.fail_next(status=429, headers={"Retry-After": "2"}, times=3)
    slack_standin.fail_next(status=500, times=2)
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k1", "k2", "k3"],
               now=datetime.now(UTC))

    drain(store, {"desk": slack(slack_standin, "#desk")})

    calls = slack_standin.calls_to("chat.postMessage")
    assert [c.status for c in calls[:5]] == [429, 429, 429, 500, 500]
    posted = Counter(c.body["text"].split(" (")[0] for c in slack_standin.messages)
    assert posted == {"[csto] Story k1": 1, "[csto] Story k2": 1, "[csto] Story k3": 1}
    assert {d["status"] for d in store.deliveries()} == {SENT}
    # No request reached Slack before the Retry-After of the last 429 elapsed.
    for index, call in enumerate(calls):
        if call.status == 429:
            for later in calls[index + 1:]:
                assert later.received_at >= call.received_at + 2.0 - SLACK, (index, later)


def test_slack_pacing_keeps_one_message_per_second_per_channel_without_blocking_others(
    store: Store, slack_standin: SlackStandIn
) -> None:
    store_hits(store, rule="csto", notifiers=["a", "b"], keys=["k1", "k2", "k3"],
               now=datetime.now(UTC))

    drain(store, {"a": slack(slack_standin, "#alpha", "a"),
                  "b": slack(slack_standin, "#beta", "b")})

    by_channel: dict[str, list[float]] = {}
    for call in slack_standin.messages:
        by_channel.setdefault(call.body["channel"], []).append(call.received_at)
    assert sorted(by_channel) == ["#alpha", "#beta"]
    for times in by_channel.values():
        assert len(times) == 3
        gaps = [b - a for a, b in pairwise(times)]
        assert all(gap >= 1.0 - SLACK for gap in gaps), gaps
    # The channels ran side by side: each one's first message came before the other's last.
    alpha, beta = by_channel["#alpha"], by_channel["#beta"]
    assert alpha[0] < beta[-1] and beta[0] < alpha[-1]


def test_smtp_down_for_30_seconds_then_up_delivers_each_email_once(
    store: Store, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    store_hits(store, rule="quake", notifiers=["mail"], keys=["m1", "m2", "m3"],
               now=datetime.now(UTC))
    mail = EmailNotifier(name="mail", host=smtp_server.host, port=smtp_server.port,
                         security="none", sender="wirewatch@newsroom.test",
                         recipients=["desk@newsroom.test"], timeout=5)

    async def outage_then_up() -> None:
        deliverer = Deliverer(
            store=store, notifiers={"mail": mail}, instance_id="test:1", backoff=FAST,
            policy=DeliveryPolicy(channels={"mail": ChannelPolicy(burst=None)}),
        )
        drained = asyncio.create_task(
            deliverer.drain(deadline=timedelta(seconds=90), poll_every=0.1)
        )
        await asyncio.sleep(30)
        assert smtp_server.messages == []
        assert all(d["status"] != SENT for d in store.deliveries())
        assert max(d["attempts"] for d in store.deliveries()) >= 3  # it kept trying
        await asyncio.to_thread(smtp_server.start)
        await drained

    asyncio.run(outage_then_up())

    subjects = Counter(str(m.message["Subject"]) for m in smtp_server.messages)
    assert subjects == {f"[wirewatch] quake: Story {k}": 1 for k in ("m1", "m2", "m3")}
    assert {d["status"] for d in store.deliveries()} == {SENT}


def test_a_paced_slack_backlog_does_not_hold_up_new_email(
    store: Store, slack_standin: SlackStandIn, smtp_server: SmtpServer
) -> None:
    store_hits(store, rule="flood", notifiers=["desk"], keys=[f"s{i}" for i in range(12)],
               now=datetime.now(UTC))
    mail = EmailNotifier(name="mail", host=smtp_server.host, port=smtp_server.port,
                         security="none", sender="wirewatch@newsroom.test",
                         recipients=["desk@newsroom.test"])

    async def backlog_then_email() -> None:
        deliverer = Deliverer(
            store=store, notifiers={"desk": slack(slack_standin, "#desk"), "mail": mail},
            instance_id="test:1", backoff=FAST,
            policy=DeliveryPolicy(channels={"desk": ChannelPolicy(burst=None),
                                            "mail": ChannelPolicy(burst=None)}),
        )
        drained = asyncio.create_task(
            deliverer.drain(deadline=timedelta(seconds=60), poll_every=0.05))
        await asyncio.to_thread(slack_standin.wait_for_messages, 1)
        store_hits(store, rule="quake", notifiers=["mail"], keys=["m1"], now=datetime.now(UTC))
        await drained

    asyncio.run(backlog_then_email())

    [email] = smtp_server.messages
    slack_times = [m.received_at for m in slack_standin.messages]
    assert len(slack_times) == 12
    # The email went out while Slack was still working through its paced backlog.
    assert email.received_at < slack_times[-1] - 2.0


@pytest.mark.parametrize(("wait", "status", "calls"), [
    ("1e20", "pending", 1),  # capped: retried in 68 years, so given up on tomorrow
    ("inf", SENT, 2),  # unreadable: the backoff's retry
])
def test_slack_429_with_a_retry_after_beyond_any_date_is_a_retry(
    store: Store, slack_standin: SlackStandIn, wait: str, status: str, calls: int
) -> None:
    # It overflowed the retry's date arithmetic: the error escaped the delivery pass
    # and the row stayed claimed ("sending") until its lease ran out.
    slack_standin.fail_next(status=429, headers={"Retry-After": wait})
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k1"], now=datetime.now(UTC))

    drain(store, {"desk": slack(slack_standin, "#desk")}, seconds=2)

    [delivery] = store.deliveries()
    assert delivery["status"] == status
    if status == "pending":
        assert "rate limited" in delivery["last_error"]
    assert len(slack_standin.calls_to("chat.postMessage")) == calls


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _deliverer(store: Store, notifiers: dict[str, Notifier], clock: _Clock) -> Deliverer:
    # Production backoff: after its first failure an alert waits 1 to 2 s, and longer
    # after each further one, up to 15 minutes.
    return Deliverer(
        store=store, notifiers=notifiers, instance_id="test:1", clock=clock,
        policy=DeliveryPolicy(channels={name: ChannelPolicy(burst=None) for name in notifiers}),
    )


def _status_by_key(store: Store) -> dict[str, str]:
    return {str(d["item_key"]): str(d["status"]) for d in store.deliveries()}


def test_alerts_waiting_out_their_backoff_go_as_soon_as_slack_answers_after_an_outage(
    store: Store, slack_standin: SlackStandIn
) -> None:
    start = datetime.now(UTC)
    clock = _Clock(start)
    deliverer = _deliverer(store, {"desk": slack(slack_standin, "#desk")}, clock)
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k1", "k2"], now=start)
    slack_standin.fail_next(status=503, times=1000)  # Slack is down

    async def outage() -> None:
        # Five passes over four minutes: each alert fails on every try it is due for, so
        # their backoffs grow (the fourth is 8 to 16 s, the fifth 16 to 32 s...).
        for seconds in (0, 2, 6, 14, 240):
            clock.now = start + timedelta(seconds=seconds)
            await deliverer.deliver_due()

    asyncio.run(outage())
    assert set(_status_by_key(store).values()) == {"pending"}
    next_due = store.next_delivery_due()
    assert next_due is not None and next_due > clock.now + timedelta(seconds=2), \
        "the test needs both alerts waiting out a backoff"

    slack_standin.reset()  # Slack answers again; a new alert arrives
    clock.now = start + timedelta(seconds=241)
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k3"], now=clock.now)
    summary = asyncio.run(deliverer.deliver_due())

    assert summary.sent == 3
    assert _status_by_key(store) == {"k1": "sent", "k2": "sent", "k3": "sent"}
    posted = Counter(c.body["text"].split(" (")[0] for c in slack_standin.messages)
    assert posted == {"[csto] Story k1": 1, "[csto] Story k2": 1, "[csto] Story k3": 1}


def test_one_alert_failing_among_others_that_go_through_keeps_its_backoff(
    store: Store, slack_standin: SlackStandIn
) -> None:
    # A failure streak shorter than an outage is this message's own trouble: retrying it
    # at once after every other message that goes through would hammer Slack with it.
    start = datetime.now(UTC)
    clock = _Clock(start)
    deliverer = _deliverer(store, {"desk": slack(slack_standin, "#desk")}, clock)
    store_hits(store, rule="csto", notifiers=["desk"], keys=["k1", "k2"], now=start)
    slack_standin.fail_next(status=503, times=1)  # k1, the first claimed, fails

    summary = asyncio.run(deliverer.deliver_due())

    assert (summary.sent, summary.retrying) == (1, 1)
    assert _status_by_key(store) == {"k1": "pending", "k2": "sent"}
