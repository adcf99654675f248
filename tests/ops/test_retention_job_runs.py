"""Retention also prunes ``job_runs``, without ever letting a run be claimed twice.

Real SQLite files and a real PostgreSQL (``database_url``), driven through the
daemon's own retention pass (``Monitor.prune_if_due``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import load_config
from monitor.service import JOB_RUNS_KEPT, Monitor
from monitor.store import Store
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TODAY = NOW.date().isoformat()


def _monitor(database: str, instance: str) -> Monitor:
    config = load_config(f'database: "{database}"\nfeeds:\n  - name: wire\n'
                         "    url: http://127.0.0.1:9/wire.xml\n",
                         source="config.yaml", environ={})
    return Monitor(config=config, store=Store.open(database), notifiers={},
                   instance_id=instance, clock=lambda: NOW)


@pytest.fixture
def monitors(database_url: str) -> Iterator[list[Monitor]]:  # noqa: F811
    opened = [_monitor(database_url, f"desk:{n}") for n in range(2)]
    yield opened
    for monitor in opened:
        asyncio.run(monitor.aclose())
        monitor.store.close()


def _claim_at(store: Store, job: str, at: datetime) -> None:
    # The time as the run key: two of the runs below fall on one day.
    assert store.claim_job_run(job, at.isoformat(), "desk:old", at)


def test_retention_prunes_old_job_runs_and_keeps_todays_claim(
        monitors: list[Monitor], caplog: pytest.LogCaptureFixture) -> None:
    first, second = monitors
    store = first.store
    gone = [NOW - timedelta(days=400), NOW - JOB_RUNS_KEPT - timedelta(seconds=1)]
    kept = [NOW - JOB_RUNS_KEPT, NOW - timedelta(days=1)]
    for at in gone + kept:
        _claim_at(store, "retention", at)
    _claim_at(store, "report", NOW - timedelta(days=200))  # any job's old rows go

    with caplog.at_level(logging.INFO, logger="wirewatch.service"):
        counts = asyncio.run(first.prune_if_due())

    assert counts is not None and counts["job_runs"] == 3
    assert "job_runs=3" in caplog.text
    assert 'wirewatch_pruned_rows_total{table="job_runs"} 3.0' in \
        first.metrics.render().decode()
    assert [(r["job"], r["claimed_at"]) for r in store.job_runs()] == [
        ("retention", at) for at in [*kept, NOW]]
    # Today's run stays claimed: neither another instance nor a second claim runs it again.
    assert asyncio.run(second.prune_if_due()) is None
    assert not store.claim_job_run("retention", TODAY, "desk:late", NOW)
    assert [r["owner"] for r in store.job_runs("retention") if r["run_key"] == TODAY] == [
        "desk:0"]


def test_store_prune_leaves_job_runs_alone_without_a_horizon(
        monitors: list[Monitor]) -> None:
    store = monitors[0].store
    _claim_at(store, "retention", NOW - timedelta(days=400))

    counts = store.prune(items_before=NOW, deliveries_before=NOW)

    assert "job_runs" not in counts
    assert len(store.job_runs()) == 1
