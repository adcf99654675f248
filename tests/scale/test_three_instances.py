"""Three ``wirewatch run`` processes on one PostgreSQL database, 300 loopback feeds,
50 rules: every feed polled once per interval by one instance, each hit alerted
once; then ``kill -9`` of one instance mid-cycle: the others take its feeds over
within two lease periods, and still no alert is lost or doubled."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.store import Store
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.scale.cluster import FeedFarm, Instance, config_text
from tests.support import FeedServer

FEEDS, RULES = 300, 50
# 300 feeds every 6 s is 50 polls/s for three daemons, PostgreSQL and this process's feed
# server on two cores. At 2 s (150 polls/s) the machine saturated and polls ran seconds
# late; at 4 s a poll still came 2 s late now and then; at 6 s, with the cores shared
# with other work, polls fell 7-11 s behind (gaps of 13-17 s). At 12 s (25 polls/s)
# the daemons keep up with half the machine.
INTERVAL = 12.0  # seconds; jitter adds up to 10 %
# (WIREWATCH_FEED_LEASE_SECONDS) Renewed every third of it; a taken-over feed waits for
# the rest of it and a survivor's next tick, and 5 s leave room for a slow tick.
LEASE = 5.0
TICK = 1.0  # the daemon's scheduler tick
# A feed is due INTERVAL (+ up to 10 % jitter) after its last poll, and picked up by the
# next tick of some instance; the rest is slack for three daemons on two shared cores.
# A skipped poll shows as a gap of at least 2 * INTERVAL (24 s), beyond this bound.
SLACK = 6.0
MAX_GAP = INTERVAL * 1.1 + TICK + SLACK


def wait_until(condition: Callable[[], object], *, timeout: float, what: str,
               every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def epoch(stored: datetime) -> float:
    """A timestamp as the store keeps it (naive UTC) in seconds since the epoch."""
    return stored.replace(tzinfo=UTC).timestamp() if stored.tzinfo is None else stored.timestamp()


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


# Its own deadlines (warm-up, replacement start, settling) add up to more than the
# suite's 120 s hang guard, and on a busy machine each runs long: a minute of
# steady state and kill recovery is only the fixed part.
@pytest.mark.timeout(600)
def test_three_instances_share_the_feeds_and_survive_a_kill(
    tmp_path: Path, fresh_postgres_url: str, feed_server: FeedServer  # noqa: F811
) -> None:
    url = fresh_postgres_url
    farm = FeedFarm(feed_server, feeds=FEEDS, rules=RULES, publish_every=3.0)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(url, farm, interval=f"{INTERVAL:g}s"))
    instances = [Instance(config, f"i{k}", lease_seconds=LEASE) for k in range(3)]
    store = Store.open(url)

    def sql(statement: str, **params: object) -> list[tuple]:  # type: ignore[type-arg]
        with store.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(statement), params)]

    try:
        # 1. Warm-up: every feed polled once (three processes starting on two cores).
        wait_until(lambda: sql("SELECT count(*) FROM feeds WHERE last_polled_at IS NOT NULL")
                   == [(FEEDS,)], timeout=180, what="every feed's first poll")

        # 2. Steady state: who polls, and how often.
        steady_from = time.time()
        pollers: set[str] = set()
        # Each feed is polled about three times: its gaps (and the window's ends) show a
        # skipped poll or a double one.
        while time.time() < steady_from + 3 * INTERVAL:
            pollers.update(r[0] for r in sql("SELECT DISTINCT last_polled_by FROM feeds"))
            time.sleep(0.2)
        steady_to = time.time()

        # 3. kill -9 one instance while it holds leases (mid-cycle).
        victim = instances[1]
        held: list[tuple] = []  # type: ignore[type-arg]

        def victim_holds_leases() -> bool:
            # Leases on feeds still due: polls in flight or queued, the ones to take over.
            held[:] = sql("SELECT name FROM feeds WHERE lease_owner = :o AND next_poll_at <= :t",
                          o=victim.instance_id, t=datetime.now(UTC).replace(tzinfo=None))
            return bool(held)

        wait_until(victim_holds_leases, timeout=60, every=0.005,
                   what=f"the victim's leases ({victim.instance_id}, exit "
                        f"{victim.process.poll()}; owners now "
                        f"{sql('SELECT DISTINCT last_polled_by FROM feeds')})")
        victim.kill()
        killed_at = time.time()
        # A dead process renews nothing, so what it holds now is what it held when it died:
        # each feed with the time it is next due (in the past for a poll in flight or
        # queued; in the future for one its pass had already polled).
        dead_held = {int(name[1:]): epoch(due) for name, due in sql(
            "SELECT name, next_poll_at FROM feeds WHERE lease_owner = :o",
            o=victim.instance_id)}
        in_flight = {(rule, link) for rule, link in sql(
            "SELECT h.rule, i.link FROM deliveries d JOIN hits h ON h.id = d.hit_id "
            "JOIN items i ON i.id = h.item_id WHERE d.status = 'sending' AND d.claimed_by = :o",
            o=victim.instance_id)}
        time.sleep(2 * LEASE + INTERVAL)

        # 4. A replacement starts, as systemd would restart the killed unit; it gives the
        # dead process's delivery claims back at once rather than when their lease ends.
        # Publishing stops; everything is polled once more and the outbox drains.
        restarted = Instance(config, "i1-restarted", lease_seconds=LEASE)
        instances.append(restarted)
        wait_until(lambda: "started feeds=" in restarted.stderr_path.read_text(), timeout=60,
                   what="the replacement to start")
        farm.freeze()
        frozen_at = time.time()
        expected = farm.expected_alerts()
        progress: dict[str, object] = {}

        def settled() -> bool:
            progress["unpolled"] = sorted(
                n for n, t in farm.poll_times(since=frozen_at + 0.5).items() if not t)[:10]
            progress["undelivered"] = sql(
                "SELECT status, count(*) FROM deliveries WHERE status <> 'sent' GROUP BY 1")
            progress["hits"] = sql("SELECT count(*) FROM hits")[0][0]
            progress["items"] = sql("SELECT count(*) FROM items WHERE title LIKE 'topic%'")
            progress["unmatched"] = sql(
                "SELECT i.title FROM items i WHERE i.title LIKE 'topic%' AND NOT EXISTS "
                "(SELECT 1 FROM hits h WHERE h.item_id = i.id) LIMIT 3")
            return (not progress["unpolled"] and not progress["undelivered"]
                    and progress["hits"] == sum(expected.values()))

        try:
            wait_until(settled, timeout=120, what="the last polls and deliveries")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {progress}, expected {sum(expected.values())} hits"
                                 ) from None
        survivors = [i for i in instances if i is not victim]
        for instance in survivors:
            code = instance.stop()
            assert code == 0, f"{instance.name} exited {code}: {instance.stderr_path.read_text()}"
    finally:
        for instance in instances:
            instance.stop()
        store.close()

    ids = {i.instance_id for i in instances[:3]}
    assert pollers <= ids and len(pollers) >= 2, f"feeds were polled by {pollers}"

    # Each feed polled once per interval in the steady state: never twice at once
    # (a double poll is two requests well under an interval apart), never skipped.
    steady = farm.poll_times(since=steady_from)
    for n, times in steady.items():
        times = [t for t in times if t <= steady_to]
        # From the window's start to the first poll and from the last to its end count too.
        spans = gaps([steady_from, *times, steady_to])
        # (A feed polled once or never in the window has no gap: "late" below says so.)
        assert min(gaps(times), default=INTERVAL) >= INTERVAL / 2, \
            f"feed {n} polled twice: {gaps(times)}"
        assert max(spans) <= MAX_GAP, f"feed {n} polled late: {spans}"

    # After the kill, a feed the victim held while it was due (a poll in flight or queued)
    # is polled by a survivor within two lease periods; one it held already polled is
    # polled when next due; every other feed keeps its interval (polled just before the
    # kill, its next poll is up to MAX_GAP away). And no feed is polled twice at once.
    after = farm.poll_times(since=killed_at)
    taken_over = [n for n, due in dead_held.items() if due <= killed_at]
    for n, times in after.items():
        if n in taken_over:
            bound, why = 2 * LEASE, "held by the victim while due"
        elif n in dead_held:
            bound = dead_held[n] - killed_at + TICK + SLACK
            why = "held by the victim, already polled"
        else:
            bound, why = MAX_GAP, "not held by the victim"
        first = min(times, default=None)
        assert first is not None and first - killed_at <= bound, (
            f"feed {n} ({why}) first polled {first and round(first - killed_at, 2)}s "
            f"after the kill, bound {bound:.2f}s")
    # Feeds the victim held may see its unfinished request, then the survivor's.
    interrupted = {int(name[1:]) for (name,) in held} | set(dead_held)
    for n, times in farm.poll_times(since=steady_from).items():
        if n not in interrupted:
            assert min(gaps(times), default=INTERVAL) >= INTERVAL / 2, \
                f"feed {n} polled twice: {gaps(times)}"
    assert held, "the victim held no lease when killed"

    # Each hit alerted exactly once across the instances. A send in flight at
    # the kill (claimed, printed, not yet marked sent) may be repeated: at-least-once.
    alerts: Counter[tuple[str, str]] = Counter()
    for instance in instances:
        alerts.update(instance.alerts())
    assert set(alerts) == set(expected), (
        f"lost: {sorted(set(expected) - set(alerts))[:5]}, "
        f"unexpected: {sorted(set(alerts) - set(expected))[:5]}")
    doubled = {key for key, count in alerts.items() if count > 1}
    assert doubled <= in_flight, f"doubled alerts: {sorted(doubled)[:5]}"
    assert len(expected) >= 100
