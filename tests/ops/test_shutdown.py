"""Graceful shutdown: SIGTERM while a fetch and a send are in flight."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.store import Store
from tests.ops.daemon import DATA, Daemon
from tests.support import FeedServer, SlackStandIn
from tests.support.feed_server import Response

CONFIG = """\
database: "sqlite:///{db}"
defaults:
  timeout: 60s
feeds:
{feeds}
notifiers:
  desk:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#world-desk"
    base_url: {slack}
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
"""


def test_sigterm_with_a_fetch_and_a_send_in_flight_exits_0_within_the_grace(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn
) -> None:
    feed_server.serve_file("/world.rss", DATA / "world.rss")
    feed_server.set_route("/stuck.rss", Response(body=b"<rss/>", delay=45))
    slack_standin.fail_next(status=500, delay=25, method="chat.postMessage")
    db = tmp_path / "w.db"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=db, feeds=feeds_yaml(
        caucasus=feed_server.url("/world.rss"), stuck=feed_server.url("/stuck.rss")),
        slack=slack_standin.base_url))
    assert slack_standin.token is not None
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": slack_standin.token})
    try:
        feed_server.wait_for_requests(2, timeout=60)  # the stuck fetch has started
        assert _wait_for_status(db, "sending"), "the send never started"
        started = time.monotonic()
        code = daemon.stop(timeout=30)
        took = time.monotonic() - started
    finally:
        daemon.close()
    assert code == 0, daemon.stderr
    assert took < 15, f"shutdown took {took:.1f}s"
    store = Store.open(f"sqlite:///{db}")
    try:
        # The interrupted send is given back, not left claimed until its lease ends.
        assert [d["status"] for d in store.deliveries()] == ["pending"]
    finally:
        store.close()


def _wait_for_status(db: Path, status: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = Store.open(f"sqlite:///{db}")
        try:
            if [d["status"] for d in store.deliveries()] == [status]:
                return True
        finally:
            store.close()
        time.sleep(0.1)
    return False




def feeds_yaml(**urls: str) -> str:
    return "\n".join(f"  - name: {name}\n    url: {url}" for name, url in urls.items())


def _feed_leases(db: Path) -> dict[str, str | None]:
    store = Store.open(f"sqlite:///{db}")
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(text("SELECT name, lease_owner FROM feeds")).all()
        return {name: owner for name, owner in rows}
    finally:
        store.close()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGTERM", "SIGHUP"])
def test_run_once_stopped_mid_poll_hands_its_feed_leases_back(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn,
    signum: signal.Signals, code: int,
) -> None:
    """From cron under `timeout` (SIGTERM), or by hand in a terminal that closes (SIGHUP):
    the hung fetch's feed is free for the next run at once."""
    feed_server.set_route("/stuck.rss", Response(body=b"<rss/>", delay=45))
    db = tmp_path / "w.db"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=db, feeds=feeds_yaml(stuck=feed_server.url("/stuck.rss")),
                                    slack=slack_standin.base_url))
    assert slack_standin.token is not None
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": slack_standin.token}, args=("--once",))
    try:
        feed_server.wait_for_requests(1, timeout=60)
        assert _feed_leases(db)["stuck"] is not None, "the feed was not leased while polled"
        exit_code = daemon.stop(signum, timeout=30)
    finally:
        daemon.close()
    assert exit_code == code, daemon.stderr
    assert f"stopped by {signum.name}" in daemon.stderr
    assert _feed_leases(db) == {"stuck": None}


def test_run_once_stopped_by_sigint_mid_send_hands_the_alert_back(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn
) -> None:
    feed_server.serve_file("/world.rss", DATA / "world.rss")
    slack_standin.fail_next(status=500, delay=25, method="chat.postMessage")
    db = tmp_path / "w.db"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(
        db=db, feeds=feeds_yaml(caucasus=feed_server.url("/world.rss")),
        slack=slack_standin.base_url))
    assert slack_standin.token is not None
    daemon = Daemon(config, env={"SLACK_BOT_TOKEN": slack_standin.token}, args=("--once",))
    try:
        # Polled: its database file exists (tests/dbs.py then leaves it on SQLite).
        feed_server.wait_for_requests(1, timeout=60)
        assert _wait_for_status(db, "sending"), "the send never started"
        code = daemon.stop(signal.SIGINT, timeout=30)
    finally:
        daemon.close()
    assert code == 130, daemon.stderr
    store = Store.open(f"sqlite:///{db}")
    try:
        # Back in the outbox for the next run, not held until its claim expires.
        assert [d["status"] for d in store.deliveries()] == ["pending"]
    finally:
        store.close()
    assert _feed_leases(db) == {"caucasus": None}
