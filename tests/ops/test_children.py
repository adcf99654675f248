"""No process outlives wirewatch: the parse workers, the forkserver that starts them and
multiprocessing's resource tracker all end with the monitor, however it ends.

Each test runs a real ``wirewatch run`` (feeds are parsed in worker processes), collects
its descendants from /proc while it runs, stops it, and checks that none is left.
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

import pytest

from tests.ops.daemon import DATA, Daemon, ProcessId, descendants, parent_of, survivors
from tests.support import FeedServer
from tests.support.feed_server import Request, Response

CONFIG = """\
database: "sqlite:///{db}"
defaults:
  interval: {interval}
  min_interval: 1s
  timeout: 30s
feeds:
{feeds}
notifiers:
  desk:
    type: console
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
"""

#: Parsed once the daemon polls it: the parse workers are up from then on.
PARSED = "feed=world new_items="


def write_config(tmp_path: Path, feeds: dict[str, str], *, interval: str = "1m") -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(
        db=tmp_path / "w.db", interval=interval,
        feeds="".join(f"  - name: {name}\n    url: {url}\n" for name, url in feeds.items())))
    return config


def serve_changing_feed(feed_server: FeedServer) -> str:
    """A feed with a new item at every request: every poll is parsed, none is 'unchanged'."""
    counter = itertools.count()

    def answer(request: Request) -> Response:
        n = next(counter)
        return Response(headers={"Content-Type": "application/rss+xml"}, body=(
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Desk</title>'
            f"<item><title>Bulletin {n}</title><guid>b-{n}</guid></item>"
            "</channel></rss>").encode())

    feed_server.set_route("/changing.rss", answer)
    return feed_server.url("/changing.rss")


def assert_none_left(processes: set[ProcessId]) -> None:
    left = survivors(processes)
    for pid in left:  # a regression must not litter the machine with idle processes
        os.kill(pid, signal.SIGKILL)
    assert left == {}


def parse_workers(daemon: Daemon) -> set[ProcessId]:
    """The daemon's grandchildren: the workers its forkserver started."""
    pid = daemon.process.pid
    return {child for child in descendants(pid) if parent_of(child[0]) not in (pid, None)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_daemon_stopped_by_signal_after_a_rejected_reload_and_a_worker_crash_leaves_nothing(
    tmp_path: Path, feed_server: FeedServer, signum: int
) -> None:
    config = write_config(tmp_path, {"world": serve_changing_feed(feed_server)}, interval="1s")
    daemon = Daemon(config, env={})
    try:
        children = once_parsing(daemon)

        # An operator's broken edit is rejected; the daemon goes on with the old config.
        good = config.read_text()
        config.write_text(good + "  - name: broken\n    query: CSTO AND (\n")
        daemon.wait_for_log("config reload rejected")

        # A worker dies (the OOM killer, a crash in C code): the pool is rebuilt.
        (victim, _), *_ = parse_workers(daemon)
        parsed_before = daemon.stderr.count(PARSED)
        children |= descendants(daemon.process.pid)
        os.kill(victim, signal.SIGKILL)
        daemon.wait_for_log("parse worker died")
        # Two more parses: at least one of them on the rebuilt pool.
        daemon.wait_for_log(PARSED, count=parsed_before + 2)
        children |= descendants(daemon.process.pid)

        code = daemon.stop(signum)
    finally:
        daemon.close()
    assert code == 0, daemon.stderr
    assert_none_left(children)


def once_parsing(daemon: Daemon) -> set[ProcessId]:
    """The daemon's descendants once it has parsed a feed (its parse workers among them)."""
    daemon.wait_for_log(PARSED)
    children = descendants(daemon.process.pid)
    assert parse_workers(daemon), "no parse worker is running"
    return children


def test_daemon_killed_with_sigkill_leaves_nothing(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """No handler runs on SIGKILL (nor when the OOM killer strikes): the workers must
    notice on their own, or they and the forkserver and resource tracker wait for ever."""
    feed_server.serve_file("/world.rss", DATA / "world.rss", content_type="application/rss+xml")
    daemon = Daemon(write_config(tmp_path, {"world": feed_server.url("/world.rss")}), env={})
    try:
        children = once_parsing(daemon)
        daemon.stop(signal.SIGKILL)
    finally:
        daemon.close()
    assert_none_left(children)


def test_run_once_leaves_nothing(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.serve_file("/world.rss", DATA / "world.rss", content_type="application/rss+xml")
    # A slow second feed keeps the pass (and its workers) going while they are listed.
    feed_server.set_route("/slow.rss", Response(body=(DATA / "world.rss").read_bytes(),
                                                delay=3))
    config = write_config(tmp_path, {"world": feed_server.url("/world.rss"),
                                     "slow": feed_server.url("/slow.rss")})
    daemon = Daemon(config, env={}, args=("--once",))
    try:
        children = once_parsing(daemon)
        code = daemon.process.wait(timeout=60)
    finally:
        daemon.close()
    assert code == 0, daemon.stderr
    assert_none_left(children)


def test_run_once_stopped_by_sigterm_mid_pass_leaves_nothing(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """``run --once`` (from cron, under a timeout) gets SIGTERM while a fetch hangs."""
    feed_server.serve_file("/world.rss", DATA / "world.rss", content_type="application/rss+xml")
    feed_server.set_route("/stuck.rss", Response(body=b"<rss/>", delay=25))
    config = write_config(tmp_path, {"world": feed_server.url("/world.rss"),
                                     "stuck": feed_server.url("/stuck.rss")})
    daemon = Daemon(config, env={}, args=("--once",))
    try:
        children = once_parsing(daemon)
        daemon.stop(signal.SIGTERM)
    finally:
        daemon.close()
    assert_none_left(children)
