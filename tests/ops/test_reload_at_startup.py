"""``systemctl reload`` (SIGHUP) while the daemon is still starting: it must not die of
the signal's default action, and the config is re-read once it is up."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from monitor.store import Store
from tests.ops.daemon import CONSOLE_CONFIG as CONFIG
from tests.ops.daemon import Daemon

# The daemon is held in start-up by a lock on its SQLite file.
pytestmark = pytest.mark.sqlite_files


def _has_open(pid: int, path: Path, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            raise AssertionError("the daemon exited during start-up") from None
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                    return
            except OSError:
                continue
        time.sleep(0.02)
    raise TimeoutError(f"the daemon did not open {path}")


def test_sighup_during_start_up_is_a_reload_not_a_kill(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    Store.open(f"sqlite:///{db}").close()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=db))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # start-up waits here to open the store
    daemon = Daemon(config, env={})
    try:
        _has_open(daemon.process.pid, db)
        daemon.process.send_signal(signal.SIGHUP)
        blocker.execute("ROLLBACK")
        daemon.wait_for_log("started feeds=1", timeout=60)
        daemon.wait_for_log("config reloaded", timeout=60)
        assert daemon.stop() == 0, daemon.stderr
    finally:
        blocker.close()
        daemon.close()
