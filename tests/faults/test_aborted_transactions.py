"""Transactions PostgreSQL aborts so that they may be run again: a deadlock's victim
(40P01) and a serialization failure (40001), where instances meet.

Instances meet where they claim alerts and feeds, renew feed leases, record polls,
admit alerts under flood control, record a story's first alert and take a channel's
pacing slot. An abort there is the server's "run this again": each is run again at
once, and the work is done exactly once. Not run again, an aborted admission left
the alerts its channel had claimed unsent for the delivery lease (2 minutes), and an
aborted batch of unchanged polls lost those records and, at the end of a pass, left
the pass's feeds leased.

Most aborts here are made by a trigger (tests/faults/aborts.py): the races that
cause them cannot be timed. Two are real deadlocks, the other side played by the
test's own connection or held at the right moment by a gate (tests/faults/sessions.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from monitor.delivery import LEASE
from monitor.store import SENT, FeedSpec, FeedUpdate, NewHit, NewItem, Store
from monitor.store.outbox import ADMISSION_LOCK_CLASS
from monitor.story_desk import StoryDesk
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.faults.aborts import DEADLOCK_DETECTED, SERIALIZATION_FAILURE, Aborts
from tests.faults.instances import ITEMS, feed_body, sent_items, start
from tests.faults.outbox import store_hits
from tests.faults.sessions import Gate, Rows, wait_until
from tests.support import FeedServer, SlackStandIn

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FEED_LEASE = timedelta(seconds=30)
SECOND = timedelta(seconds=1)


def count(store: Store, statement: str) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(statement)).scalar_one())


def the_feed(store: Store) -> int:
    store.sync_feeds([FeedSpec("wire", "http://127.0.0.1:1/wire")], now=T0)
    feed = store.feed("wire")
    assert feed is not None
    return feed.id


def unchanged(at: datetime) -> FeedUpdate:
    return FeedUpdate(polled_at=at, next_poll_at=at + timedelta(minutes=5), status=304,
                      error=None)


# ------------------------------------------------------------------ one point at a time
#
# Each point: what must be in the database first, then ``arm()`` (the trigger that
# aborts the first transaction writing there is put in place), then the call, which
# must succeed once, as if the abort had never happened.

def claim_deliveries(store: Store, arm: Callable[[], None]) -> None:
    store_hits(store, rule="quake", notifiers=["desk"], keys=["q1"], now=T0)
    arm()
    [claimed] = store.claim_deliveries(now=T0, lease=LEASE, claimer="a:1")
    assert claimed.attempts == 1  # the aborted claim's attempt went with it


def admit(store: Store, arm: Callable[[], None]) -> None:
    store_hits(store, rule="quake", notifiers=["desk"], keys=["q1"], now=T0)
    [claimed] = store.claim_deliveries(now=T0, lease=LEASE, claimer="a:1")
    arm()
    assert store.admit_unless_held(claimed.id, notifier="desk", rule="quake", now=T0,
                                   hold=lambda _admitted: None) is None
    assert count(store, "SELECT count(*) FROM deliveries WHERE admitted_at IS NOT NULL") == 1


def claim_feeds(store: Store, arm: Callable[[], None]) -> None:
    the_feed(store)
    arm()
    claimed = store.claim_due_feeds(now=T0, lease=FEED_LEASE, owner="a:1")
    assert [feed.name for feed in claimed] == ["wire"]


def renew_leases(store: Store, arm: Callable[[], None]) -> None:
    the_feed(store)
    store.claim_due_feeds(now=T0, lease=FEED_LEASE, owner="a:1")
    arm()
    assert store.renew_feed_leases(owner="a:1", until=T0 + 2 * FEED_LEASE) == 1


def record_unchanged(store: Store, arm: Callable[[], None]) -> None:
    feed_id = the_feed(store)
    arm()
    store.record_unchanged_many([(feed_id, unchanged(T0))])
    feed = store.feed("wire")
    assert feed is not None and feed.last_polled_at == T0


def first_alert_of_story(store: Store, arm: Callable[[], None]) -> None:
    feed_id = the_feed(store)
    arm()
    item = NewItem(item_key="q1", guid="q1", link="https://news.example/q1",
                   title="Earthquake report q1", summary="An earthquake.", content="",
                   author="", categories=(), published_at=T0)

    def match(new: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule="quake", item_key=i.item_key, severity="normal",
                       matched_terms=(), snippet=i.summary, marks=(), notifiers=("desk",))
                for i in new]

    stories = StoryDesk()
    hits = store.store_poll(feed_id, [item], match=match, update_=unchanged(T0),
                            stories=stories)
    assert len(hits) == 1
    assert [(d["rule"], d["notifier"]) for d in store.deliveries()] == [("quake", "desk")]
    assert count(store, "SELECT count(*) FROM story_alerts") == 1
    assert len(store.stories()) == 1 and len(stories.index) == 1


def pacing_slot(store: Store, arm: Callable[[], None]) -> None:
    arm()
    assert store.reserve_channel_slot("k", now=T0, spacing=SECOND) == T0
    # The aborted reservation moved nothing: the next slot is one spacing on.
    assert store.reserve_channel_slot("k", now=T0, spacing=SECOND) == T0 + SECOND


POINTS: dict[str, tuple[Callable[[Store, Callable[[], None]], None], Rows]] = {
    "delivery claim": (claim_deliveries, Rows(
        "deliveries", "UPDATE", "NEW.status = 'sending' AND OLD.status <> 'sending'")),
    "admission": (admit, Rows(
        "deliveries", "UPDATE", "OLD.admitted_at IS NULL AND NEW.admitted_at IS NOT NULL")),
    "feed claim": (claim_feeds, Rows(
        "feeds", "UPDATE", "OLD.lease_owner IS NULL AND NEW.lease_owner IS NOT NULL")),
    "lease renewal": (renew_leases, Rows(
        "feeds", "UPDATE", "NEW.lease_until > OLD.lease_until")),
    "unchanged polls": (record_unchanged, Rows(
        "feeds", "UPDATE", "NEW.last_polled_at IS DISTINCT FROM OLD.last_polled_at")),
    "story's first alert": (first_alert_of_story, Rows("story_alerts", "INSERT")),
    "pacing slot": (pacing_slot, Rows("channel_slots", "UPDATE")),
}


@pytest.mark.parametrize("sqlstate", [DEADLOCK_DETECTED, SERIALIZATION_FAILURE])
@pytest.mark.parametrize("point", list(POINTS))
def test_a_transaction_aborted_where_instances_meet_is_run_again_once(
    point: str, sqlstate: str, fresh_postgres_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    work, rows = POINTS[point]
    store = Store.open(fresh_postgres_url)
    aborts = Aborts(fresh_postgres_url)
    name = point.replace(" ", "_").replace("'", "")
    try:
        work(store, lambda: aborts.arm(name, rows, sqlstate=sqlstate))
        assert aborts.fired(name) == 1, "the abort never happened: the test proves nothing"
        assert f"({sqlstate})" in caplog.text
    finally:
        aborts.close()
        store.close()


# ------------------------------------------------------------------ a real deadlock

def test_an_admission_chosen_as_a_deadlock_victim_is_run_again(
    fresh_postgres_url: str,  # noqa: F811
) -> None:
    """The other side (here the test's own connection) holds the row the admission
    marks and asks for the admission's lock: a true deadlock, found by the server."""
    store = Store.open(fresh_postgres_url)
    other = create_engine(fresh_postgres_url)
    try:
        store_hits(store, rule="quake", notifiers=["desk"], keys=["q1"], now=T0)
        [claimed] = store.claim_deliveries(now=T0, lease=LEASE, claimer="a:1")
        outcome: dict[str, Any] = {}

        def admit() -> None:
            try:
                outcome["hold"] = store.admit_unless_held(
                    claimed.id, notifier="desk", rule="quake", now=T0,
                    hold=lambda _admitted: None)
            except Exception as exc:  # surfaced below, not lost in the thread
                outcome["error"] = exc

        with other.connect() as connection:
            transaction = connection.begin()
            # The admission waits first, so its session finds the deadlock (after the
            # server's deadlock_timeout) and is the one aborted; this one waits longer
            # (a superuser's setting, as the tests' server URL is).
            connection.execute(text("SET LOCAL deadlock_timeout = '30s'"))
            connection.execute(text("SELECT id FROM deliveries WHERE id = :id FOR UPDATE"),
                               {"id": claimed.id})
            admitting = threading.Thread(target=admit)
            admitting.start()
            # It holds the admission lock and waits for the row.
            wait_until(lambda: count(store, "SELECT count(*) FROM pg_locks WHERE NOT granted"
                                            " AND locktype = 'transactionid'") == 1,
                       timeout=30, what="the admission to wait for the row")
            connection.execute(text("SELECT pg_advisory_xact_lock(:c, hashtext(:k))"),
                               {"c": ADMISSION_LOCK_CLASS, "k": "desk\nquake"})
            # Granted: the admission was aborted, and its locks went with it. Its second
            # run now waits for this transaction to end.
            transaction.rollback()
        admitting.join(30)
        assert "error" not in outcome, outcome
        assert outcome == {"hold": None}
        assert count(store, "SELECT count(*) FROM deliveries WHERE admitted_at IS NOT NULL") == 1
    finally:
        other.dispose()
        store.close()


def test_a_lease_renewal_and_a_batch_of_unchanged_polls_never_deadlock(
    fresh_postgres_url: str, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    """An instance renews its leases (a thread of its own) while its pass records a
    batch of unchanged polls: both lock the instance's feeds, and must take them in
    one order. The batch goes in id order; the renewal went in the table's physical
    order, which updates reshuffle, and the two deadlocked."""
    store = Store.open(fresh_postgres_url)
    try:
        store.sync_feeds([FeedSpec(f"f{n}", f"http://127.0.0.1:1/f{n}") for n in (1, 2)],
                         now=T0)
        ids = {feed.name: feed.id for feed in store.feeds()}
        store.claim_due_feeds(now=T0, lease=FEED_LEASE, owner="a:1")
        with store.engine.begin() as connection:
            # Updated again, f1's row now lies after f2's in the table.
            connection.execute(text("UPDATE feeds SET etag = 'v2' WHERE name = 'f1'"))
        # The batch stops once it has f1, before it asks for f2.
        gate = Gate(fresh_postgres_url, Rows(
            "feeds", "UPDATE",
            f"NEW.id = {ids['f1']} AND NEW.last_polled_at IS DISTINCT FROM OLD.last_polled_at"))
        errors: list[BaseException] = []
        renewed: list[object] = []

        def run(work: Callable[[], object]) -> threading.Thread:
            def guarded() -> None:
                try:
                    renewed.append(work())
                except BaseException as exc:  # surfaced below, not lost in the thread
                    errors.append(exc)
            thread = threading.Thread(target=guarded)
            thread.start()
            return thread

        try:
            batch = run(lambda: store.record_unchanged_many(
                [(ids["f1"], unchanged(T0)), (ids["f2"], unchanged(T0))]))
            gate.waiter()
            renewal = run(lambda: store.renew_feed_leases(owner="a:1",
                                                          until=T0 + 2 * FEED_LEASE))
            # The renewal waits for f1, which the batch holds.
            wait_until(lambda: gate.sql("SELECT count(*) FROM pg_locks WHERE NOT granted"
                                        " AND locktype IN ('transactionid', 'tuple')") == [1],
                       timeout=30, what="the renewal to wait for the batch's row")
            gate.open()
            batch.join(30)
            renewal.join(30)
        finally:
            gate.close()
        assert not errors, errors
        assert "aborted the transaction" not in caplog.text
        assert {feed.name: feed.last_polled_at for feed in store.feeds()} == {
            "f1": T0, "f2": T0}
        assert renewed == [None, 2]  # the batch's nothing, the renewal's two leases
    finally:
        store.close()


# ------------------------------------------------------------------ real instances

@pytest.mark.timeout(180)
def test_two_instances_whose_transactions_are_aborted_send_each_alert_once_and_soon(
    tmp_path: Path, fresh_postgres_url: str,  # noqa: F811
    feed_server: FeedServer, slack_standin: SlackStandIn,
) -> None:
    url = fresh_postgres_url
    with contextlib.ExitStack() as cleanup:
        store = Store.open(url)
        cleanup.callback(store.close)
        aborts = Aborts(url)
        cleanup.callback(aborts.close)
        points = {"feed_claim": "feed claim", "story": "story's first alert",
                  "claim": "delivery claim", "admission": "admission",
                  "slot": "pacing slot"}
        for k, (name, point) in enumerate(points.items()):
            aborts.arm(name, POINTS[point][1],
                       sqlstate=(DEADLOCK_DETECTED, SERIALIZATION_FAILURE)[k % 2])
        feed_server.set_route("/wire.xml", feed_body())
        feed = feed_server.url("/wire.xml")
        instances = [start(tmp_path / f"i{k}", database=url, feed=feed, slack=slack_standin)
                     for k in range(2)]
        for instance in instances:
            cleanup.callback(instance.close)

        # Well inside the delivery lease (2 minutes), which a claimed alert waits out
        # when its channel's pass ends in an error.
        messages = slack_standin.wait_for_messages(len(ITEMS), timeout=60)
        wait_until(lambda: {d["status"] for d in store.deliveries()} == {SENT},
                   timeout=30, what="every alert marked sent")
        assert sent_items(slack_standin) == Counter(ITEMS), messages
        assert {name: aborts.fired(name) for name in points} == dict.fromkeys(points, 1)
        logged = "\n".join(instance.stderr for instance in instances)
        for instance in instances:
            assert instance.stop() == 0
        # Each abort was run again at once: no pass, poll or send failed for it.
        assert logged.count("running it again") == len(points), logged
        assert " failed" not in logged, logged
