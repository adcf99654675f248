"""The database failing under a running wirewatch: a PostgreSQL connection killed
mid-write, a SQLite file deleted or replaced.

Faults are made on the test's own database only: its table locked from another
connection, and the backend that waits for the lock terminated, as a failover or a
server restart ends a connection in the middle of a transaction.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from monitor.delivery import LEASE, Deliverer
from monitor.pacing import Pacer
from monitor.store import SENT, Store
from notifiers import Alert, Receipt, SlackNotifier
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.faults.outbox import store_hits
from tests.ops.daemon import Daemon, free_port, http_get, wait_for_http
from tests.support import SlackStandIn


class WriteKiller:
    """Kills the next write to ``table``: holds an exclusive lock on it, terminates the
    first other backend that waits for the lock, then lets go."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self._threads: list[threading.Thread] = []
        self.killed: list[int] = []

    def arm(self, table: str) -> None:
        locked = threading.Event()

        def run() -> None:
            with self._engine.connect() as locker, self._engine.connect() as watcher:
                locker.execute(text("BEGIN"))
                locker.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                own = locker.execute(text("SELECT pg_backend_pid()")).scalar()
                locked.set()
                deadline = time.monotonic() + 10
                while not self.killed and time.monotonic() < deadline:
                    waiting = watcher.execute(text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> :own"), {"own": own}
                    ).scalars().all()
                    for pid in waiting:
                        watcher.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                        self.killed.append(pid)
                    time.sleep(0.02)
                locker.execute(text("ROLLBACK"))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)
        locked.wait(timeout=10)

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=15)
        self._engine.dispose()


def test_a_connection_killed_while_marking_an_alert_sent_does_not_send_it_twice(
    fresh_postgres_url: str, slack_standin: SlackStandIn  # noqa: F811
) -> None:
    store = Store.open(fresh_postgres_url)
    killer = WriteKiller(fresh_postgres_url)
    sends: list[str] = []

    class KilledAfterFirstSend(SlackNotifier):
        def send(self, alert: Alert) -> Receipt:
            receipt = super().send(alert)
            sends.append(alert.alert_id)
            if len(sends) == 1:  # the message is out; now its "sent" mark is cut off
                killer.arm("deliveries")
            return receipt

    slack = KilledAfterFirstSend(name="desk", channel="#desk", token=slack_standin.token,
                                 base_url=slack_standin.base_url)
    try:
        now = datetime.now(UTC)
        store_hits(store, rule="quake", notifiers=["desk"], keys=["q1", "q2"], now=now)
        deliverer = Deliverer(store=store, notifiers={"desk": slack}, instance_id="desk-1:1",
                              pacer=Pacer(scale=0.0))
        asyncio.run(deliverer.deliver_due())
        killer.close()
        assert killer.killed, "the write was never cut off: the test proves nothing"

        # Whatever is still claimed comes due again once its lease has run out.
        later = Deliverer(store=store, notifiers={"desk": slack}, instance_id="desk-2:1",
                          pacer=Pacer(scale=0.0), clock=lambda: datetime.now(UTC) + LEASE * 2)
        asyncio.run(later.deliver_due())

        assert [d["status"] for d in store.deliveries()] == [SENT, SENT]
        assert sorted(m.body["text"][:16] for m in slack_standin.messages) == [
            "[quake] Story q1", "[quake] Story q2"]
    finally:
        killer.close()
        store.close()


@pytest.mark.sqlite_files
@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_a_sqlite_file_deleted_or_replaced_under_the_daemon_is_named_on_healthz(
        tmp_path: Path, change: str) -> None:
    db = tmp_path / "w.db"
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f'database: "sqlite:///{db}"\nhttp:\n  listen: 127.0.0.1:{port}\n'
                      "feeds:\n  - name: dw\n    url: http://127.0.0.1:9/dw\n")
    daemon = Daemon(config, env={})
    try:
        daemon.wait_for_log("started feeds=1")
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz")[0] == 200
        if change == "deleted":
            db.unlink()
        else:  # a copy put in its place, as a restore by `cp` + `mv` does
            shutil.copy(db, tmp_path / "restored.db")
            (tmp_path / "restored.db").replace(db)
        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503, body
        assert f"database {db} was {'deleted' if change == 'deleted' else 'replaced'}" in body
        daemon.wait_for_log("stop wirewatch, put the database back")
        assert daemon.process.poll() is None, "the daemon died"
    finally:
        daemon.stop()
