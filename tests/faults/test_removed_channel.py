"""A channel removed from config.yaml while alerts for it wait in the outbox: every one
is failed and reported on ops_notify, whether it waited alone or held for a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from monitor.delivery import Deliverer
from monitor.digest import DigestSchedule
from monitor.holds import ChannelPolicy, DeliveryPolicy
from monitor.pacing import Pacer
from monitor.store import Store
from notifiers import SlackNotifier
from tests.faults.outbox import store_hits
from tests.support import SlackStandIn


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'removed.db'}")
    yield opened
    opened.close()


def deliver(store: Store, standin: SlackStandIn, name: str, policy: DeliveryPolicy) -> None:
    slack = SlackNotifier(name=name, channel=f"#{name}", token=standin.token,
                          base_url=standin.base_url)
    deliverer = Deliverer(store=store, notifiers={name: slack}, instance_id="test:1",
                          policy=policy, pacer=Pacer(scale=0.0), ops_notifier="ops")
    asyncio.run(deliverer.deliver_due())


def test_rows_held_for_a_digest_of_a_removed_channel_fail_and_are_reported(
    store: Store, slack_standin: SlackStandIn
) -> None:
    digest = DeliveryPolicy(channels={"desk": ChannelPolicy(digest=DigestSchedule(
        "0 8 * * *", "UTC"))})
    with time_machine.travel(datetime(2026, 3, 2, 7, 0, tzinfo=UTC), tick=False) as clock:
        store_hits(store, rule="csto", notifiers=["desk"], keys=["a1", "a2"],
                   now=datetime.now(UTC))
        deliver(store, slack_standin, "desk", digest)
        assert [d["status"] for d in store.deliveries()] == ["held", "held"]

        # 'desk' is removed by a reload (its digest with it); 'ops' stays.
        clock.move_to(datetime(2026, 3, 2, 8, 0, 1, tzinfo=UTC))
        deliver(store, slack_standin, "ops", DeliveryPolicy())

    rows = store.deliveries()
    assert [d["status"] for d in rows] == ["failed", "failed"]
    assert rows[0]["last_error"] == "notifier 'desk' is no longer configured"
    [notice] = slack_standin.messages
    assert "could not be delivered on 'desk'" in notice.body["text"]


def test_a_notice_queued_for_a_removed_ops_channel_fails_and_stops_being_due(
    store: Store, slack_standin: SlackStandIn
) -> None:
    # ops_notify moved from 'ops' to 'desk' while a notice for 'ops' was queued: it
    # would stay due for ever (and `run --once` would wait on it until its timeout).
    now = datetime.now(UTC)
    assert store.queue_notice(key="feed-failing:wire:1", notifier="ops", title="wire failing",
                              body="HTTP 500", now=now)
    deliver(store, slack_standin, "desk", DeliveryPolicy())

    [notice] = store.notices()
    assert (notice["status"], notice["last_error"]) == (
        "failed", "notifier 'ops' is no longer configured")
    assert store.next_notice_due() is None
    assert slack_standin.messages == []
