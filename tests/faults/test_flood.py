"""Flood control against the Slack stand-in: 50 hits of one rule within a minute."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from monitor.delivery import Deliverer
from monitor.flood import Burst
from monitor.holds import ChannelPolicy, DeliveryPolicy
from monitor.pacing import Pacer
from monitor.store import HELD, SENT, Store
from notifiers import SlackNotifier
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.faults.outbox import store_hits
from tests.support import SlackStandIn

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def deliverer(store: Store, standin: SlackStandIn, clock: Clock) -> Deliverer:
    slack = SlackNotifier(name="desk", channel="#desk", token=standin.token,
                          base_url=standin.base_url)
    policy = DeliveryPolicy(channels={"desk": ChannelPolicy(burst=Burst(max=10,
                                                                        window=timedelta(
                                                                            minutes=10)))})
    # Pacing is covered elsewhere; here it would only make the test slow.
    return Deliverer(store=store, notifiers={"desk": slack}, instance_id="test:1",
                     clock=clock, policy=policy, pacer=Pacer(scale=0.0))


def test_fifty_hits_in_a_minute_make_at_most_burst_max_plus_one_messages(
    database_url: str, slack_standin: SlackStandIn  # noqa: F811
) -> None:
    url = database_url
    store = Store.open(url)
    clock = Clock(T0)
    # Five polls, 12 s apart, of ten hits each; the deliverer runs after each poll.
    for poll in range(5):
        clock.now = T0 + timedelta(seconds=12 * poll)
        store_hits(store, rule="quake", notifiers=["desk"],
                   keys=[f"q{poll * 10 + i:02d}" for i in range(10)], now=clock.now)
        asyncio.run(deliverer(store, slack_standin, clock).deliver_due())
    assert len(slack_standin.messages) == 10
    statuses = [d["status"] for d in store.deliveries()]
    assert statuses.count(SENT) == 10 and statuses.count(HELD) == 40
    store.close()

    # A restart before the window ends changes nothing: the overflow is in the database.
    store = Store.open(url)
    clock.now = T0 + timedelta(minutes=9, seconds=59)
    asyncio.run(deliverer(store, slack_standin, clock).deliver_due())
    assert len(slack_standin.messages) == 10

    # At the end of the window (10 min after the first alert) one summary lists the rest.
    clock.now = T0 + timedelta(minutes=10, seconds=1)
    asyncio.run(deliverer(store, slack_standin, clock).deliver_due())
    messages = slack_standin.messages
    assert len(messages) <= 10 + 1
    summary = messages[-1].body
    assert summary["text"] == "40 more matches for quake"
    assert summary["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "40 more matches for quake", "emoji": False},
    }
    text = "\n".join(b["text"]["text"] for b in summary["blocks"][1:] if b["type"] == "section")
    linked = re.findall(r"<https://news\.example/(q\d\d)\?a=1&amp;b=2\|Story q\d\d>", text)
    sent_alone = {m.body["text"].split("Story ")[1].split(" ")[0] for m in messages[:-1]}
    assert sorted(linked) == sorted({f"q{i:02d}" for i in range(50)} - sent_alone)
    assert {d["status"] for d in store.deliveries()} == {SENT}
    store.close()
