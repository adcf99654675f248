"""/metrics after many hot reloads: series of rules and notifiers that left the config go.

A real Monitor on a SQLite file, reloaded in process with real configs; the poller's
and the deliverer's metric hooks report as they do after a poll and a send.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from monitor.channels import build_notifiers
from monitor.config import Config, load_config
from monitor.service import Monitor
from monitor.store import Store


def _config(db: Path, *, rule: str, notifier: str) -> Config:
    text = (f'database: "sqlite:///{db}"\n'
            "feeds:\n  - name: wire\n    url: http://127.0.0.1:9/wire.xml\n"
            f"notifiers:\n  {notifier}:\n    type: console\n"
            f"rules:\n  - name: {rule}\n    query: budget\n    notify: [{notifier}]\n")
    return load_config(text, source="config.yaml", environ={})


def _series(exposition: str, metric: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith(metric + "{")]


def test_metrics_keep_no_series_for_rules_and_notifiers_gone_from_the_config(
        tmp_path: Path) -> None:
    """Editors rename and remove rules and channels while the daemon runs for months;
    each left its hits and deliveries series in /metrics (and in every scrape) for
    the rest of the run."""
    db = tmp_path / "wirewatch.db"
    first = _config(db, rule="rule-0", notifier="desk0")
    out = io.StringIO()
    monitor = Monitor(config=first, store=Store.open(first.database),
                      notifiers=build_notifiers(first, stdout=out), instance_id="desk:1")
    try:
        for n in range(20):
            if n:
                config = _config(db, rule=f"rule-{n}", notifier=f"desk{n}")
                monitor.apply_config(config, build_notifiers(config, stdout=out))
            monitor.metrics.hit_stored(rule=f"rule-{n}")
            monitor.metrics.delivery_finished(notifier=f"desk{n}", outcome="sent")
        exposition = monitor.metrics.render().decode()
        assert _series(exposition, "wirewatch_hits_total") == [
            'wirewatch_hits_total{rule="rule-19"} 1.0']
        assert _series(exposition, "wirewatch_deliveries_total") == [
            'wirewatch_deliveries_total{notifier="desk19",outcome="sent"} 1.0']
        # Process-wide series stay.
        assert 'wirewatch_config_reloads_total{outcome="applied"} 19.0' in exposition
    finally:
        asyncio.run(monitor.aclose())
        monitor.store.close()
