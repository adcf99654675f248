"""Feed leases and cluster-wide job runs in the store, on SQLite and PostgreSQL.

Several instances share one database: each due feed goes to exactly one of
them, a lease that runs out (its holder died) frees the feed, and a job run
is claimed by one instance only (docs/scaling.md).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.store import FeedSpec, FeedState, FeedUpdate, Store
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=3)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(database_url)
    opened.sync_feeds([FeedSpec(f"f{n:03}", f"http://127.0.0.1:1/{n}") for n in range(40)],
                      now=T0)
    yield opened
    opened.close()


def names(states: list[FeedState]) -> set[str]:
    return {s.name for s in states}


def polled(store: Store, name: str, at: datetime) -> None:
    """Record a poll of ``name`` at ``at``: next due a minute later."""
    state = store.feed(name)
    assert state is not None
    store.record_unchanged(state.id, FeedUpdate(
        polled_at=at, next_poll_at=at + timedelta(minutes=1), status=304, error=None))


def test_two_instances_split_the_due_feeds(store: Store) -> None:
    first = store.claim_due_feeds(now=T0, lease=LEASE, owner="a", limit=25)
    second = store.claim_due_feeds(now=T0, lease=LEASE, owner="b", limit=25)
    assert len(first) == 25 and len(second) == 15
    assert names(first).isdisjoint(names(second))
    assert store.claim_due_feeds(now=T0, lease=LEASE, owner="c", limit=25) == []
    assert {s.last_polled_by for s in first} == {"a"}
    assert store.feed(second[0].name).last_polled_by == "b"  # type: ignore[union-attr]


def test_claims_come_most_overdue_first(store: Store) -> None:
    later = T0 + timedelta(minutes=5)
    polled(store, "f000", T0 - timedelta(minutes=2))  # due at T0 - 1 min: the most overdue
    claimed = store.claim_due_feeds(now=later, lease=LEASE, owner="a", limit=3)
    assert claimed[0].name == "f000"
    assert [s.next_poll_at for s in claimed] == sorted(s.next_poll_at for s in claimed)


@pytest.mark.parametrize(
    ("case", "after", "claimable"),
    [
        ("lease still running", LEASE - timedelta(milliseconds=1), False),
        ("lease just expired", LEASE, True),
        ("long after the lease", 10 * LEASE, True),
    ],
)
def test_a_dead_instances_feeds_return_when_its_lease_expires(
    store: Store, case: str, after: timedelta, claimable: bool
) -> None:
    taken = store.claim_due_feeds(now=T0, lease=LEASE, owner="dead", limit=100)
    assert len(taken) == 40
    again = store.claim_due_feeds(now=T0 + after, lease=LEASE, owner="alive", limit=100)
    assert (len(again) == 40) is claimable, case
    if claimable:
        assert {s.last_polled_by for s in again} == {"alive"}


def test_a_polled_feed_is_not_due_again_until_its_next_poll(store: Store) -> None:
    claimed = store.claim_due_feeds(now=T0, lease=LEASE, owner="a", limit=100)
    for state in claimed:
        polled(store, state.name, T0)
    store.release_feeds(owner="a", feed_ids=[s.id for s in claimed])
    assert store.claim_due_feeds(now=T0 + timedelta(seconds=59), lease=LEASE, owner="b") == []
    assert len(store.claim_due_feeds(now=T0 + timedelta(minutes=1), lease=LEASE,
                                     owner="b")) == 40


def test_force_claims_feeds_not_due_but_never_leased_ones(store: Store) -> None:
    for n in range(40):
        polled(store, f"f{n:03}", T0)
    held = store.claim_due_feeds(now=T0, lease=LEASE, owner="a", limit=5, force=True)
    rest = store.claim_due_feeds(now=T0, lease=LEASE, owner="b", limit=100, force=True)
    assert len(held) == 5 and len(rest) == 35
    assert names(held).isdisjoint(names(rest))


def test_force_still_obeys_retry_after(store: Store) -> None:
    state = store.feed("f000")
    assert state is not None
    store.record_failure(state.id, FeedUpdate(
        polled_at=T0, next_poll_at=T0 + timedelta(hours=1), status=429, error="slow down",
        retry_after_until=T0 + timedelta(hours=1)))
    claimed = store.claim_due_feeds(now=T0, lease=LEASE, owner="a", limit=100, force=True)
    assert "f000" not in names(claimed) and len(claimed) == 39


def test_release_gives_back_only_the_owners_leases(store: Store) -> None:
    mine = store.claim_due_feeds(now=T0, lease=LEASE, owner="a", limit=10)
    theirs = store.claim_due_feeds(now=T0, lease=LEASE, owner="b", limit=10)
    assert store.release_feeds(owner="a", feed_ids=[s.id for s in mine + theirs]) == 10
    again = store.claim_due_feeds(now=T0, lease=LEASE, owner="c", limit=100)
    assert names(again) == {f"f{n:03}" for n in range(40)} - names(theirs)
    assert store.release_feeds(owner="c") == 30  # all of an owner's leases (shutdown)


def test_concurrent_claimers_never_share_a_feed(store: Store) -> None:
    """Eight threads, each its own instance, claim in small windows until nothing is left."""
    got: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def instance(owner: str) -> None:
        start.wait()
        while claimed := store.claim_due_feeds(now=T0, lease=LEASE, owner=owner, limit=3):
            with lock:
                got.update(s.name for s in claimed)

    threads = [threading.Thread(target=instance, args=(f"i{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(got) == [f"f{n:03}" for n in range(40)]
    assert set(got.values()) == {1}


@pytest.mark.parametrize(
    ("case", "runs", "expected"),
    [
        ("same run on two instances", [("retention", "2026-03-02", "a"),
                                       ("retention", "2026-03-02", "b")], [True, False]),
        ("next run", [("retention", "2026-03-02", "a"),
                      ("retention", "2026-03-03", "b")], [True, True]),
        ("other job, same key", [("retention", "2026-03-02", "a"),
                                 ("digest", "2026-03-02", "a")], [True, True]),
        ("same instance twice", [("retention", "2026-03-02", "a"),
                                 ("retention", "2026-03-02", "a")], [True, False]),
    ],
)
def test_a_job_run_is_claimed_once(store: Store, case: str, runs: list[tuple[str, str, str]],
                                   expected: list[bool]) -> None:
    got = [store.claim_job_run(job, key, owner, T0) for job, key, owner in runs]
    assert got == expected, case
    winners = {(r["job"], r["run_key"]): r["owner"] for r in store.job_runs()}
    assert winners[(runs[0][0], runs[0][1])] == runs[0][2]


def test_concurrent_job_claims_have_one_winner(store: Store) -> None:
    results: list[bool] = []
    start = threading.Barrier(6)

    def instance(owner: str) -> None:
        start.wait()
        results.append(store.claim_job_run("retention", "2026-03-02", owner, T0))

    threads = [threading.Thread(target=instance, args=(f"i{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * 5 + [True]


def test_a_renewed_lease_outlives_its_first_expiry(store: Store) -> None:
    store.claim_due_feeds(now=T0, lease=LEASE, owner="a", limit=5)
    store.claim_due_feeds(now=T0, lease=LEASE, owner="b", limit=5)
    assert store.renew_feed_leases(owner="a", until=T0 + 2 * LEASE) == 5
    later = store.claim_due_feeds(now=T0 + LEASE, lease=LEASE, owner="c", limit=100)
    assert len(later) == 35  # b's five came back, a's five are still a's
