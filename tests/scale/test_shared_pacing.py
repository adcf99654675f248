"""Two instances on one PostgreSQL database sending to one Slack channel space their
messages as one sender would: each channel's next free slot lives in the database
(``SharedPacer``), not in each process.

Real PostgreSQL, the real slack-sdk client against the Slack stand-in, which records
when each message arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from monitor.delivery import LEASE, PASS_BUDGET, Deliverer
from monitor.pacing import MAX_SHARED_WAIT, Pacer, Pacing, SharedPacer
from monitor.store import FeedSpec, FeedUpdate, NewHit, NewItem, Store
from notifiers import SlackNotifier
from notifiers.slack import MIN_INTERVAL
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.support import SlackStandIn

# Loopback and thread start-up jitter, well below the gap two unshared pacers leave
# (next to nothing: both instances send at once).
TOLERANCE = 0.2


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:  # noqa: F811
    """The run's PostgreSQL database, emptied (shared slots are a PostgreSQL feature)."""
    engine = create_engine(postgres_url)
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    yield postgres_url


def publish(store: Store, keys: Sequence[str]) -> None:
    """The wire feed brings ``keys``; one rule matches each for the "desk" channel."""
    now = datetime.now(UTC)
    feed_id = next(s.id for s in store.due_feeds(now=now, force=True) if s.name == "wire")

    def match(items: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule="csto", item_key=i.item_key, severity="normal", matched_terms=(),
                       snippet=i.title, marks=(), notifiers=("desk",)) for i in items]

    items = [NewItem(item_key=k, guid=k, link=f"https://wire.example/{k}", title=f"Story {k}",
                     summary="", content="", author="", categories=(), published_at=now)
             for k in keys]
    store.store_poll(feed_id, items, match=match, update_=FeedUpdate(
        polled_at=now, next_poll_at=now + timedelta(minutes=5), status=200, error=None))


def desk(slack_standin: SlackStandIn) -> SlackNotifier:
    return SlackNotifier(name="desk", channel="#desk", token=slack_standin.token,
                         base_url=slack_standin.base_url)


def run_two_instances(url: str, slack_standin: SlackStandIn,
                      pacers: Sequence[Pacing] | None) -> list[float]:
    """Instance A starts sending three alerts; once its first is out, three more arrive
    and instance B, started then, claims and sends them while A is still sending.
    Returns the arrival times of all six messages at the stand-in."""
    stores = [Store.open(url), Store.open(url)]
    try:
        stores[0].sync_feeds([FeedSpec("wire", "http://127.0.0.1:1/wire")],
                             now=datetime.now(UTC))
        publish(stores[0], ["a1", "a2", "a3"])

        def instance(k: int) -> None:
            pacer = None if pacers is None else pacers[k]
            deliverer = Deliverer(store=stores[k], notifiers={"desk": desk(slack_standin)},
                                  instance_id=f"host-{k}:1", pacer=pacer)
            asyncio.run(deliverer.deliver_due())

        a = threading.Thread(target=instance, args=(0,))
        a.start()
        slack_standin.wait_for_messages(1)
        publish(stores[1], ["b1", "b2", "b3"])
        b = threading.Thread(target=instance, args=(1,))
        b.start()
        a.join(30)
        b.join(30)
        messages = slack_standin.wait_for_messages(6)
    finally:
        for store in stores:
            store.close()
    assert {str(m.body["text"]).split("Story ")[-1][:2] for m in messages} == {
        "a1", "a2", "a3", "b1", "b2", "b3"}
    return sorted(m.received_at for m in messages)


def test_two_instances_space_their_messages_to_one_channel(
    url: str, slack_standin: SlackStandIn
) -> None:
    # The deliverer's own choice on PostgreSQL: no pacer given.
    arrivals = run_two_instances(url, slack_standin, pacers=None)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= MIN_INTERVAL - TOLERANCE, gaps


def test_unshared_pacers_would_send_together(url: str, slack_standin: SlackStandIn) -> None:
    """What the shared slots prevent: two processes pacing alone post to the channel at
    the same moments (the measurement above can tell the two apart)."""
    arrivals = run_two_instances(url, slack_standin, pacers=[Pacer(), Pacer()])
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) < MIN_INTERVAL - TOLERANCE, gaps


def test_a_database_failure_falls_back_to_pacing_in_the_process() -> None:
    """Slots that cannot be read or written never stop a send, nor undo one."""

    class Down:
        def reserve_channel_slot(self, key: str, *, now: datetime,
                                 spacing: timedelta) -> datetime:
            raise ConnectionError("database unreachable")

        def push_channel_slot(self, key: str, *, not_before: datetime) -> None:
            raise ConnectionError("database unreachable")

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    pacer = SharedPacer(Down(), sleep=sleep)

    async def two_sends() -> None:
        for _ in range(2):
            await pacer.wait("slack:desk", 1.0)
            pacer.sent("slack:desk", 1.0)

    asyncio.run(two_sends())
    # The second send waited for the first's local slot, about a second.
    assert len(slept) == 1 and 0.5 <= slept[0] <= 1.0


def test_a_slot_far_ahead_is_not_waited_for_beyond_the_cap() -> None:
    """A slot a clock skew put ten minutes ahead holds a send one minute at most, well
    inside the delivery's claim, so no other instance takes the delivery over."""

    class Ahead:
        def reserve_channel_slot(self, key: str, *, now: datetime,
                                 spacing: timedelta) -> datetime:
            return now + timedelta(minutes=10)

        def push_channel_slot(self, key: str, *, not_before: datetime) -> None:
            pass

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    asyncio.run(SharedPacer(Ahead(), sleep=sleep).wait("slack:desk", 1.0))
    assert slept == [MAX_SHARED_WAIT]
    # A paced channel claims what it can send in PASS_BUDGET; all of it waiting the
    # longest still ends inside the claim.
    assert LEASE.total_seconds() > PASS_BUDGET / MIN_INTERVAL * MAX_SHARED_WAIT


def test_slots_are_taken_in_turn_and_only_pushed_later(database_url: str) -> None:  # noqa: F811
    store = Store.open(database_url)
    t0 = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    second = timedelta(seconds=1)
    try:
        # Slots follow each other a spacing apart, however early they are asked for.
        assert store.reserve_channel_slot("k", now=t0, spacing=second) == t0
        assert store.reserve_channel_slot("k", now=t0, spacing=second) == t0 + second
        # Another key has slots of its own.
        assert store.reserve_channel_slot("other", now=t0, spacing=second) == t0
        # A Retry-After pushes the next slot out; an earlier time never pulls it back.
        store.push_channel_slot("k", not_before=t0 + 30 * second)
        store.push_channel_slot("k", not_before=t0 + 5 * second)
        assert store.reserve_channel_slot("k", now=t0, spacing=second) == t0 + 30 * second
        # Asked after its next slot, a key's slot is now.
        later = t0 + timedelta(minutes=5)
        assert store.reserve_channel_slot("k", now=later, spacing=second) == later
        # A key pushed before it was ever used starts there.
        store.push_channel_slot("new", not_before=later)
        assert store.reserve_channel_slot("new", now=t0, spacing=second) == later
    finally:
        store.close()
