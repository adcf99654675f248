"""SQLite beside a busy daemon: CLI commands never fail with "database is locked".

Every write transaction starts with BEGIN IMMEDIATE and waits up to the busy
timeout for the write lock (monitor.store), so a read command, or a ``run
--once`` that writes, run next to a daemon that writes all the time simply
waits its turn.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.store import Store
from tests.scale.cluster import FeedFarm, Instance, config_text
from tests.support import FeedServer

COMMANDS = [
    ("feeds", "--format", "json"),
    ("hits", "--since", "1h", "--format", "json"),
    ("stats", "--format", "json"),
    ("run", "--once", "--deliver-timeout", "2"),
]


# Two rounds of four CLI commands (each opening the store, one a full run --once)
# beside a daemon polling 200 feeds a second: a minute on a busy machine, near the
# suite's 120 s hang guard.
@pytest.mark.timeout(300)
def test_cli_commands_beside_a_busy_daemon_never_hit_a_locked_database(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    farm = FeedFarm(feed_server, feeds=200, rules=50, publish_every=1.0)
    config = tmp_path / "config.yaml"
    config.write_text(config_text(f"sqlite:///{tmp_path / 'w.db'}", farm, interval="1s"))
    daemon = Instance(config, "daemon", lease_seconds=3)
    outcomes: list[tuple[str, int, str]] = []
    try:
        deadline = time.monotonic() + 30
        while "new_items=" not in daemon.stderr_path.read_text():  # writing by now
            assert time.monotonic() < deadline, daemon.stderr_path.read_text()[-3000:]
            assert daemon.process.poll() is None, daemon.stderr_path.read_text()[-3000:]
            time.sleep(0.1)
        until = time.monotonic() + 8
        rounds = 0
        while time.monotonic() < until or rounds < 2:  # two rounds even on a slow machine
            rounds += 1
            for command in COMMANDS:
                out, err = io.StringIO(), io.StringIO()
                code = main(["--config", str(config), *command], stdout=out, stderr=err,
                            environ={})
                outcomes.append((command[0], code, err.getvalue()))
                if command[0] == "feeds" and code == 0:
                    assert len(json.loads(out.getvalue())) == 200
        assert daemon.process.poll() is None, "the daemon died"
    finally:
        daemon.stop()
    locked = [(name, err) for name, _, err in outcomes if "locked" in err]
    assert not locked, locked[:3]
    # run --once may end with exit 3: it counts the daemon's alerts still on their way.
    failed = [(name, code, err[-500:]) for name, code, err in outcomes
              if code != 0 and not (name == "run" and code == 3)]
    assert not failed, failed[:3]
    assert "locked" not in daemon.stderr_path.read_text()
    assert {name for name, _, _ in outcomes} == {c[0] for c in COMMANDS}
    assert len(outcomes) >= 2 * len(COMMANDS)
    assert "hits=" in daemon.stderr_path.read_text()  # the daemon was writing hits meanwhile


def test_opening_a_new_database_waits_while_another_connection_writes(tmp_path: Path) -> None:
    # A file not yet in WAL mode, written by another process at the moment the store
    # opens it: turning on WAL needs a lock SQLite refuses at once, busy timeout or not.
    path = tmp_path / "new.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    committed = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    # Read the clock before the timer starts: the commit is then certainly 0.5 s after
    # it, however late this thread runs again.
    started = time.monotonic()
    committed.start()
    try:
        store = Store.open(f"sqlite:///{path}")
    finally:
        committed.join()
        writer.close()
    try:
        assert time.monotonic() - started >= 0.4  # it waited for the writer
        assert store.feeds() == []
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check.close()
