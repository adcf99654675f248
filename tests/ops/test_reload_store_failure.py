"""A reload whose database write fails (a locked or full disk, a server restarting):
the running config stays whole, and the edit is applied on a later look, not lost."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

from monitor.config import load_config
from monitor.ops_wiring import reloader_for
from monitor.reload import ConfigReloader
from monitor.service import Monitor
from monitor.store import Store
from tests.ops.daemon import CONSOLE_CONFIG as CONFIG

# The failure is an SQLite trigger on the file the monitor uses.
pytestmark = pytest.mark.sqlite_files

EDITED = (CONFIG + """\
  - name: quake
    query: earthquake
""").replace("rules:", "  - name: asia\n    url: http://127.0.0.1:9/asia.rss\nrules:")


def test_a_reload_that_cannot_write_the_feeds_is_retried_and_changes_nothing_meanwhile(
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.db"
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(db=db))
    config = load_config(path.read_text(), source=str(path), environ={})
    store = Store.open(config.database)
    monitor = Monitor(config=config, store=store, notifiers={}, instance_id="desk:1")
    failing = sqlite3.connect(db, isolation_level=None)
    try:
        reloader = reloader_for(monitor, path=path, environ={}, stdout=io.StringIO())
        path.write_text(EDITED.format(db=db))
        failing.execute("CREATE TRIGGER full BEFORE INSERT ON feeds "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")

        with pytest.raises(SQLAlchemyError, match="disk is full"):
            reloader.check(forced=True)
        # Nothing of the edit is half-applied.
        assert monitor.config is config
        assert list(monitor.poller.plan.rules) == ["csto"]

        failing.execute("DROP TRIGGER full")
        assert reloader.check() == "applied"  # the same file, looked at again
        assert [r.name for r in monitor.config.rules] == ["csto", "quake"]
        assert sorted(f.name for f in store.feeds()) == ["asia", "wire"]
    finally:
        failing.close()
        asyncio.run(monitor.aclose())
        store.close()


def test_a_reload_that_keeps_failing_backs_off_and_logs_one_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A database down for an hour made the watcher load and compile the whole config,
    # and log a traceback, every second of it.
    path = tmp_path / "config.yaml"
    path.write_text("version: 0\n")
    down = True
    tries: list[str] = []

    def apply(text: str) -> None:
        tries.append(text)
        if down:
            raise OSError("database unavailable")

    reloader: ConfigReloader[str] = ConfigReloader(
        path=path, load=lambda text: text, apply=apply, reject=lambda rejected: None,
        errors=(ValueError,), initial_text="version: 0\n", interval=0.05)
    reloader.LONGEST_RETRY_WAIT = 0.4
    path.write_text("version: 1 (edited)\n")

    async def watch() -> None:
        stop = asyncio.Event()
        watching = asyncio.create_task(reloader.run(stop))
        await asyncio.sleep(1.6)  # 32 tries at one a turn; 0.05 s doubling to 0.4: <= 7
        failed_tries = len(tries)
        nonlocal down
        down = False
        for _ in range(600):  # the next try comes within 0.4 s
            if reloader.applied:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await watching
        assert 2 <= failed_tries <= 7, failed_tries
        assert tries[-1] == "version: 1 (edited)\n"

    with caplog.at_level(logging.INFO, logger="wirewatch.reload"):
        asyncio.run(watch())
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    # Days of failures keep the longest wait (2.0 ** 5000 would overflow a float).
    assert reloader._retry_wait(5000) == reloader.LONGEST_RETRY_WAIT
    assert any("config reload failed again" in r.getMessage() for r in caplog.records)
    assert any("config reload applied after" in r.getMessage() for r in caplog.records)
