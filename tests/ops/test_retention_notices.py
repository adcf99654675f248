"""Retention prunes finished ops notices, as it prunes finished deliveries.

Real SQLite files and a real PostgreSQL (``database_url``), driven through the
daemon's own retention pass (``Monitor.prune_if_due``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import load_config
from monitor.service import Monitor
from monitor.store import Store
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEPT = timedelta(days=90)  # retention.deliveries, by default


@pytest.fixture
def monitor(database_url: str) -> Iterator[Monitor]:  # noqa: F811
    config = load_config(f'database: "{database_url}"\nfeeds:\n  - name: wire\n'
                         "    url: http://127.0.0.1:9/wire.xml\n",
                         source="config.yaml", environ={})
    opened = Monitor(config=config, store=Store.open(database_url), notifiers={},
                     instance_id="desk:1", clock=lambda: NOW)
    yield opened
    asyncio.run(opened.aclose())
    opened.store.close()


def _notice(store: Store, key: str, *, at: datetime, outcome: str | None) -> None:
    assert store.queue_notice(key=key, notifier="ops", title=key, body="", now=at)
    if outcome is None:
        return
    [claimed] = store.claim_notices(now=at, lease=timedelta(minutes=2), claimer="desk:1")
    if outcome == "sent":
        store.mark_notice_sent(claimed.id, external_id=None, now=at)
    else:
        store.mark_notice_failed(claimed.id, reason="channel_not_found")


def test_retention_prunes_finished_notices_older_than_deliveries_are_kept(
        monitor: Monitor) -> None:
    """Each failing, silent or recovered feed, each failed delivery queues a notice: a
    daemon running for months gathered them for good, as nothing ever pruned them."""
    store = monitor.store
    old = NOW - KEPT - timedelta(seconds=1)
    _notice(store, "feed-failing:wire:old", at=old, outcome="sent")
    _notice(store, "delivery-failed:desk:1", at=old, outcome="failed")
    _notice(store, "feed-recovered:wire:recent", at=NOW - KEPT, outcome="sent")
    _notice(store, "feed-silent:wire:old", at=old, outcome=None)  # still to send: kept

    counts = asyncio.run(monitor.prune_if_due())

    assert counts is not None and counts["notices"] == 2
    assert [n["key"] for n in store.notices()] == [
        "feed-recovered:wire:recent", "feed-silent:wire:old"]
    assert 'wirewatch_pruned_rows_total{table="notices"} 2.0' in \
        monitor.metrics.render().decode()
