"""Each instance's id where operators look (``wirewatch feeds``, /metrics), the lease
setting, and retention run by one instance a day whatever the number of instances."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.metrics import Metrics
from monitor.service import Monitor
from monitor.store import Store
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.monitor.polling_kit import ONE_ITEM
from tests.support import FeedServer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def cli(config: Path, *args: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *args], stdout=out, stderr=err, environ=environ or {})
    return code, out.getvalue(), err.getvalue()


def write_config(path: Path, database: str, feed_url: str) -> Path:
    path.write_text(f'database: "{database}"\nfeeds:\n  - name: wire\n    url: {feed_url}\n'
                    "rules:\n  - name: budget\n    query: budget\n")
    return path


def test_feeds_shows_which_instance_polled_last(tmp_path: Path, database_url: str,  # noqa: F811
                                                feed_server: FeedServer) -> None:
    feed_server.serve_feed("/wire.xml", ONE_ITEM, etag="v1")
    config = write_config(tmp_path / "config.yaml", database_url, feed_server.url("/wire.xml"))

    cli(config, "run", "--once", "--deliver-timeout", "1")
    code, out, err = cli(config, "feeds", "--format", "json")
    assert code == 0, err
    # main() ran in this process: its id is this host and pid.
    assert json.loads(out)[0]["last_polled_by"] == f"{socket.gethostname()}:{os.getpid()}"
    code, table, _ = cli(config, "feeds")
    assert "POLLED BY" in table and f"{socket.gethostname()}:{os.getpid()}" in table


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_lease_setting_is_refused(tmp_path: Path, value: str) -> None:
    config = write_config(tmp_path / "config.yaml", f"sqlite:///{tmp_path / 'w.db'}",
                          "http://127.0.0.1:9/wire.xml")
    code, _, err = cli(config, "run", "--once", environ={"WIREWATCH_FEED_LEASE_SECONDS": value})
    assert code == 1
    assert "WIREWATCH_FEED_LEASE_SECONDS" in err


@pytest.mark.parametrize(("value", "warned"), [("3", True), ("20", False), ("120", False)])
def test_a_lease_setting_shorter_than_the_timeout_is_warned_about(
    tmp_path: Path, value: str, warned: bool
) -> None:
    config = write_config(tmp_path / "config.yaml", f"sqlite:///{tmp_path / 'w.db'}",
                          "http://127.0.0.1:9/wire.xml")  # defaults.timeout: 20 s
    code, _, err = cli(config, "run", "--once", environ={"WIREWATCH_FEED_LEASE_SECONDS": value})
    assert code == 0, err
    warning = ("WIREWATCH_FEED_LEASE_SECONDS=3 is shorter than defaults.timeout (20s)")
    assert (warning in err) is warned, err


def test_metrics_name_the_instance() -> None:
    text = Metrics(instance_id="desk-1:4242").render().decode()
    assert 'wirewatch_instance_info{instance_id="desk-1:4242"} 1.0' in text
    assert "wirewatch_instance_info" not in Metrics().render().decode()


def monitor_on(database: str, instance: str, *, clock: datetime,
               lease: timedelta | None = None) -> Monitor:
    config = load_config(f'database: "{database}"\nfeeds:\n  - name: wire\n'
                         "    url: http://127.0.0.1:9/wire.xml\n"
                         "rules:\n  - name: budget\n    query: budget\n",
                         source="config.yaml", environ={})
    return Monitor(config=config, store=Store.open(database), notifiers={},
                   instance_id=instance, clock=lambda: clock, feed_lease=lease)


def test_monitor_wires_instance_and_lease(tmp_path: Path) -> None:
    monitor = monitor_on(f"sqlite:///{tmp_path / 'w.db'}", "desk-2:7", clock=T0,
                         lease=timedelta(seconds=3))
    try:
        assert 'instance_id="desk-2:7"' in monitor.metrics.render().decode()
        assert monitor.poller.feed_lease(monitor.poller.plan) == timedelta(seconds=3)
        assert monitor.poller.instance_id == "desk-2:7"
    finally:
        asyncio.run(monitor.aclose())
        monitor.store.close()


def test_without_a_setting_the_lease_outlasts_the_slowest_fetch(tmp_path: Path) -> None:
    monitor = monitor_on(f"sqlite:///{tmp_path / 'w.db'}", "desk:1", clock=T0)
    try:
        timeout = max(f.timeout for f in monitor.poller.plan.feeds.values())
        assert monitor.poller.feed_lease(monitor.poller.plan) > 2 * timeout
    finally:
        asyncio.run(monitor.aclose())
        monitor.store.close()


def test_retention_runs_on_one_instance_a_day(database_url: str) -> None:  # noqa: F811
    day_one = [monitor_on(database_url, f"desk:{n}", clock=T0) for n in range(3)]
    day_two = [monitor_on(database_url, f"desk:{n}", clock=T0 + timedelta(days=1))
               for n in range(3)]
    try:
        first = [asyncio.run(m.prune_if_due()) for m in day_one]
        second = [asyncio.run(m.prune_if_due()) for m in reversed(day_two)]
        assert [r is not None for r in first] == [True, False, False]
        assert [r is not None for r in second] == [True, False, False]
        runs = day_one[0].store.job_runs("retention")
        assert [(r["run_key"], r["owner"]) for r in runs] == [
            ("2026-03-02", "desk:0"), ("2026-03-03", "desk:2")]
    finally:
        for monitor in day_one + day_two:
            asyncio.run(monitor.aclose())
            monitor.store.close()


def test_the_environment_sets_the_instance_id(tmp_path: Path, database_url: str,  # noqa: F811
                                              feed_server: FeedServer) -> None:
    # Containers sharing a hostname (host networking), each its own pid 1, would all be
    # "host:1": one instance's leases and claims taken for another's.
    feed_server.serve_feed("/wire.xml", ONE_ITEM, etag="v1")
    config = write_config(tmp_path / "config.yaml", database_url, feed_server.url("/wire.xml"))
    code, _, err = cli(config, "run", "--once", "--deliver-timeout", "1",
                       environ={"WIREWATCH_INSTANCE_ID": "desk-a"})
    assert code == 0, err
    code, out, err = cli(config, "feeds", "--format", "json")
    assert json.loads(out)[0]["last_polled_by"] == "desk-a"

    code, _, err = cli(config, "run", "--once", environ={"WIREWATCH_INSTANCE_ID": "a\tb"})
    assert code == 1
    assert "WIREWATCH_INSTANCE_ID='a\\tb': expected at most 200 printable characters" in err
