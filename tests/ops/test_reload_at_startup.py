"""``systemctl reload`` (SIGHUP) while the daemon is still starting: it must not die of
the signal's default action, and the config is re-read once it is up."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from monitor.store import Store
from tests.ops.daemon import CONSOLE_CONFIG as CONFIG
from tests.ops.daemon import REPO, Daemon

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


# Loaded by the child's site module: it sends the process SIGHUP while the CLI, and
# with it the whole pipeline, is still being imported (about a second of a real start).
_SIGHUP_DURING_IMPORT = '''
import os, signal, sys

class _HupOnCliImport:
    def find_spec(self, name, path=None, target=None):
        if name == "monitor.cli":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGHUP)
        return None

sys.meta_path.insert(0, _HupOnCliImport())
'''


@pytest.mark.parametrize("command", ["module", "script"])
def test_sighup_while_the_command_still_imports_is_a_reload_not_a_kill(
    tmp_path: Path, command: str
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SIGHUP_DURING_IMPORT)
    db = tmp_path / "w.db"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(db=db))
    env = {"PYTHONPATH": os.pathsep.join((str(hooks), str(REPO)))}
    if command == "module":
        daemon = Daemon(config, env=env)  # python -m monitor run
    else:
        script = Path(sys.executable).parent / "wirewatch"
        daemon = Daemon(config, env=env, argv=(str(script), "run", "--config", str(config)))
    try:
        daemon.wait_for_log("started feeds=1", timeout=60)
        daemon.wait_for_log("config reloaded", timeout=60)
        assert daemon.stop() == 0, daemon.stderr
    finally:
        daemon.close()
