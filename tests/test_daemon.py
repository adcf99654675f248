"""The daemon as operators run it: a real process, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.ops.daemon import Daemon
from tests.support import FeedServer, SlackStandIn

DATA = Path(__file__).parent / "data" / "e2e"
REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
database: "sqlite:///{db}"
defaults:
  interval: 1m
feeds:
  - name: caucasus-desk
    url: {world}
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


def start_daemon(config: Path, token: str) -> Daemon:
    # Output goes to files (appended to by each start) so the test can wait for a line.
    return Daemon(config, env={"SLACK_BOT_TOKEN": token})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_daemon_alerts_then_stops_cleanly_on_signal(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn, signum: int,
) -> None:
    feed_server.serve_file("/world.rss", DATA / "world.rss", content_type="application/rss+xml")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "w.db", world=feed_server.url("/world.rss"),
                                    slack=slack_standin.base_url))
    assert slack_standin.token is not None
    daemon = start_daemon(config, slack_standin.token)
    try:
        (message,) = slack_standin.wait_for_messages(1, timeout=30)
        assert "csto-exit" in message.body["text"]
        # The feed's next poll is a minute away: nothing more is fetched meanwhile.
        time.sleep(2.5)
        assert len(feed_server.requests_to("/world.rss")) == 1
        code = daemon.stop(signum, timeout=30)
    finally:
        daemon.close()
    assert code == 0, daemon.stderr
    assert "stopping" in daemon.stderr

    # Restarted, the daemon keeps the feed's cadence from the store: no poll, no alert.
    daemon = start_daemon(config, slack_standin.token)
    try:
        # Signalled before its handlers are in place (start-up takes seconds on a busy
        # machine), it would die of SIGTERM's default action: wait until it is up, then
        # give its scheduler a few ticks in which it must not poll.
        daemon.wait_for_log("started feeds=", count=2, timeout=60)
        time.sleep(3)
        code = daemon.stop(signal.SIGTERM, timeout=30)
    finally:
        daemon.close()
    assert code == 0, daemon.stderr
    assert len(feed_server.requests_to("/world.rss")) == 1
    assert len(slack_standin.messages) == 1


def test_daemon_with_broken_config_exits_1_naming_the_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("feeds:\n  - name: a\n    url: http://127.0.0.1:9/a\n    intervall: 5m\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 1
    assert "config.yaml:4: feeds[0].intervall: unknown key 'intervall'" in done.stderr
