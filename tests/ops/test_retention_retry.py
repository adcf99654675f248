"""A retention run that fails is tried again within minutes, not the next day.

Real failures: a SQLite file locked by another connection (an ``sqlite3`` shell left
inside a transaction), and a PostgreSQL connection cut off in the middle of the
prune, as a failover or a server restart does. Driven through the daemon's own
retention pass (``Monitor.prune_if_due``) on a clock the test moves.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from monitor.config import load_config
from monitor.service import JOB_RUNS_KEPT, PRUNE_EVERY, PRUNE_RETRY_FIRST, Monitor
from monitor.store import Store
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.faults.killer import WriteKiller

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _monitor(store: Store, clock: Clock, instance: str = "desk:1") -> Monitor:
    config = load_config('database: "sqlite:///unused.db"\nfeeds:\n  - name: wire\n'
                         "    url: http://127.0.0.1:9/wire.xml\n",
                         source="config.yaml", environ={})
    return Monitor(config=config, store=store, notifiers={}, instance_id=instance, clock=clock)


def _tick(monitor: Monitor) -> dict[str, int] | None:
    """One tick of the daemon's retention pass. The scheduler logs what escapes a
    pass and goes on, so an exception is a failed try there as here."""
    try:
        return asyncio.run(monitor.prune_if_due())
    except Exception:
        return None


def _old_claim(store: Store) -> None:
    # Something for the retry to prune: a run claimed long before JOB_RUNS_KEPT.
    long_ago = NOW - JOB_RUNS_KEPT - timedelta(days=1)
    assert store.claim_job_run("retention", long_ago.date().isoformat(), "desk:old", long_ago)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    path = tmp_path / "wirewatch.db"
    store = Store.open(f"sqlite:///{path}")

    # The store waits 30 s for a lock before it fails; a tenth of a second fails the
    # same way without holding the test up.
    @event.listens_for(store.engine, "connect")
    def _impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=100")

    store.engine.dispose()
    yield store, path
    store.close()


def _lock(path: Path) -> sqlite3.Connection:
    """Hold the write lock on ``path`` until the connection rolls back."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.mark.sqlite_files
def test_a_prune_that_failed_on_a_locked_database_is_retried_within_minutes(
        sqlite_store: tuple[Store, Path], caplog: pytest.LogCaptureFixture) -> None:
    store, path = sqlite_store
    clock = Clock()
    monitor = _monitor(store, clock)
    _old_claim(store)
    try:
        with caplog.at_level(logging.INFO, logger="wirewatch.service"):
            holder = _lock(path)
            assert _tick(monitor) is None
            holder.execute("ROLLBACK")
            holder.close()

            clock.now = NOW + PRUNE_RETRY_FIRST - timedelta(seconds=1)
            assert _tick(monitor) is None
            assert [r["run_key"] for r in store.job_runs("retention")] == ["2025-12-01"], \
                "retried before its backoff ran out"

            clock.now = NOW + PRUNE_RETRY_FIRST
            counts = _tick(monitor)
            assert counts is not None, "the failed prune was not retried"
            assert counts["job_runs"] == 1

            # Once it went through, the daily cadence again: not at the next UTC day,
            # a whole day after the run that went through.
            clock.now = NOW + PRUNE_RETRY_FIRST + PRUNE_EVERY - timedelta(seconds=1)
            assert _tick(monitor) is None
            clock.now = NOW + PRUNE_RETRY_FIRST + PRUNE_EVERY
            assert _tick(monitor) is not None
    finally:
        asyncio.run(monitor.aclose())

    failures = [r for r in caplog.records if "retention failed" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR and failures[0].exc_info is not None
    assert "database is locked" in caplog.text
    assert "retention failed, nothing was pruned; next try in 60 s" in caplog.text
    assert "retention pruned after 1 failed tries" in caplog.text
    assert caplog.text.count("retention pruned") == 2


@pytest.mark.sqlite_files
def test_a_prune_that_keeps_failing_backs_off_to_five_minutes_with_one_traceback(
        sqlite_store: tuple[Store, Path], caplog: pytest.LogCaptureFixture) -> None:
    store, path = sqlite_store
    clock = Clock()
    monitor = _monitor(store, clock)
    holder = _lock(path)
    waits: list[int] = []
    try:
        with caplog.at_level(logging.INFO, logger="wirewatch.service"):
            for _ in range(6):
                assert _tick(monitor) is None
                last = caplog.records[-1].getMessage() if caplog.records else ""
                found = re.findall(r"next try in (\d+) s", last)
                assert found, f"no next try announced: {last!r}"
                waits.append(int(found[0]))
                clock.now += timedelta(seconds=waits[-1])
            holder.execute("ROLLBACK")
            assert _tick(monitor) is not None
    finally:
        holder.close()
        asyncio.run(monitor.aclose())

    assert waits == [60, 120, 240, 300, 300, 300]
    failed = [r for r in caplog.records if "retention failed" in r.getMessage()]
    assert [r.exc_info is not None for r in failed] == [True] + [False] * 5
    assert "retention failed again (6 tries): OperationalError" in caplog.text
    assert "retention pruned after 6 failed tries" in caplog.text


def test_a_prune_cut_off_on_postgresql_leaves_the_day_unclaimed_and_is_retried(
        fresh_postgres_url: str) -> None:  # noqa: F811
    store = Store.open(fresh_postgres_url)
    clock = Clock()
    monitor = _monitor(store, clock)
    killer = WriteKiller(fresh_postgres_url)
    _old_claim(store)
    try:
        killer.arm("deliveries")  # the prune's first delete, after its claim of the day
        assert _tick(monitor) is None
        killer.close()
        assert killer.killed, "the prune was never cut off: the test proves nothing"
        # A claim that outlived its prune would make every retry today skip the run.
        assert [r["run_key"] for r in store.job_runs("retention")] == ["2025-12-01"]

        clock.now = NOW + PRUNE_RETRY_FIRST
        counts = _tick(monitor)
        assert counts is not None, "the failed prune was not retried"
        assert counts["job_runs"] == 1
        assert [(r["run_key"], r["owner"]) for r in store.job_runs("retention")] == [
            ("2026-03-02", "desk:1")]
    finally:
        killer.close()
        asyncio.run(monitor.aclose())
        store.close()
