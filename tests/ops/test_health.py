"""/healthz and /metrics: the judgement, and the listener on loopback."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.health import HealthCheck, OpsServer
from monitor.metrics import Metrics
from monitor.scheduler import PassFailure
from monitor.store import FeedSpec, Store
from tests.ops.daemon import http_get


def _ok() -> None:
    pass


def _down() -> None:
    raise ConnectionError("connection refused\nsecond line is dropped")


@pytest.mark.parametrize(
    ("last_tick", "ping", "ok", "reason"),
    [
        pytest.param(99.0, _ok, True, "ok: scheduler ticked 1.0s ago, database answers",
                     id="ticking, database answers"),
        pytest.param(None, _ok, False, "scheduler: not ticking yet", id="before the first tick"),
        pytest.param(70.0, _ok, False, "scheduler: last tick 30.0s ago (limit 10s)",
                     id="scheduler stalled"),
        pytest.param(99.0, _down, False, "database: ConnectionError: connection refused",
                     id="database down"),
        pytest.param(70.0, _down, False, "scheduler: last tick 30.0s ago (limit 10s); "
                     "database: ConnectionError: connection refused", id="both"),
    ],
)
def test_health_judgement(last_tick: float | None, ping: Callable[[], None], ok: bool,
                          reason: str) -> None:
    check = HealthCheck(last_tick=lambda: last_tick, ping=ping, clock=lambda: 100.0)
    result = check.check()
    assert (result.ok, result.reason) == (ok, reason)


def test_a_pass_failing_on_every_tick_for_30s_is_unhealthy() -> None:
    # A damaged SQLite file still answers SELECT 1 while every delivery pass fails.
    failing = {"deliver": PassFailure(since=60.0, count=40, logged_at=60.0,
                                      error="DatabaseError: database disk image is malformed"),
               "poll": PassFailure(since=95.0, count=5, logged_at=95.0, error="OSError: x")}
    check = HealthCheck(last_tick=lambda: 99.5, ping=_ok, failing=lambda: failing,
                        clock=lambda: 100.0)
    result = check.check()
    assert (result.ok, result.reason) == (
        False, "deliver: failing for 40s (40 times): DatabaseError: database disk image is "
               "malformed")


def test_a_short_streak_of_failures_is_still_healthy() -> None:
    failing = {"poll": PassFailure(since=95.0, count=5, logged_at=95.0, error="OSError: x")}
    check = HealthCheck(last_tick=lambda: 99.5, ping=_ok, failing=lambda: failing,
                        clock=lambda: 100.0)
    assert check.check().ok


def test_listener_serves_health_and_every_metric(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    store.sync_feeds([FeedSpec("dw", "http://127.0.0.1:1/dw")], now=datetime.now(UTC))
    metrics = Metrics(gauges=lambda: store)
    now = datetime.now(UTC)
    metrics.feed_polled(outcome="new", new_items=3, lag_seconds=0.4)
    metrics.feed_polled(outcome="error", new_items=0, lag_seconds=-1.0)
    metrics.fetch_finished(seconds=0.2)
    metrics.hit_stored(rule="csto-exit")
    metrics.delivery_finished(notifier="desk", outcome="sent", now=now,
                              published_at=now - timedelta(minutes=10),
                              first_seen_at=now - timedelta(seconds=3))
    metrics.delivery_finished(notifier="desk", outcome="retry")
    ticks: list[float | None] = [None]
    health = HealthCheck(last_tick=lambda: ticks[0], ping=store.ping)
    server = OpsServer(host="127.0.0.1", port=0, health=health, metrics=metrics)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert http_get(base + "/healthz") == (503, "scheduler: not ticking yet\n")
        ticks[0] = time.monotonic()
        status, body = http_get(base + "/healthz")
        assert status == 200 and body.startswith("ok:")
        status, text = http_get(base + "/metrics")
        assert http_get(base + "/other")[0] == 404
    finally:
        server.close()
        store.close()
    assert status == 200
    expected = [
        'wirewatch_polls_total{outcome="new"} 1.0',
        'wirewatch_polls_total{outcome="error"} 1.0',
        "wirewatch_new_items_total 3.0",
        "wirewatch_fetch_duration_seconds_count 1.0",
        'wirewatch_hits_total{rule="csto-exit"} 1.0',
        'wirewatch_deliveries_total{notifier="desk",outcome="sent"} 1.0',
        'wirewatch_deliveries_total{notifier="desk",outcome="retry"} 1.0',
        'wirewatch_scheduler_lag_seconds_bucket{le="0.5"} 2.0',
        'wirewatch_alert_latency_seconds_bucket{le="5.0",since="first_seen"} 1.0',
        'wirewatch_alert_latency_seconds_bucket{le="300.0",since="published"} 0.0',
        'wirewatch_alert_latency_seconds_bucket{le="900.0",since="published"} 1.0',
        "wirewatch_outbox_depth 0.0",
        "wirewatch_failing_feeds 0.0",
        # The HELP lines say what docs/operations.md says each counts.
        "# HELP wirewatch_deliveries_total Delivery attempts by notifier and outcome "
        "(sent, retry, failed, held).",
        "# HELP wirewatch_outbox_depth Deliveries not yet finished (pending, held for a "
        "batch, or being sent).",
    ]
    for line in expected:
        assert line in text.splitlines(), line


def test_a_listen_address_in_use_is_a_config_problem(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.yaml"
        config.write_text(f'database: "sqlite:///{tmp_path / "w.db"}"\n'
                          f"http:\n  listen: 127.0.0.1:{port}\n"
                          "feeds:\n  - name: dw\n    url: http://127.0.0.1:9/dw\n")
        err = io.StringIO()
        code = main(["--config", str(config), "run"], stdout=io.StringIO(), stderr=err,
                    environ={})
    assert code == 1
    assert err.getvalue().endswith(
        f"{config}:3: http.listen: cannot listen on 127.0.0.1:{port}: address already in use; "
        "stop the process that holds it or choose another address\n")
