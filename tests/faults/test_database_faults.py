"""The database failing under a running wirewatch: a PostgreSQL connection killed
mid-write, the server gone for a while, a SQLite file deleted or replaced.

Faults are made on the test's own database only: its table locked from another
connection, and the backend that waits for the lock terminated, as a failover or a
server restart ends a connection in the middle of a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url

from monitor.delivery import LEASE, Deliverer
from monitor.pacing import Pacer
from monitor.store import SENT, Store, StoreError
from notifiers import Alert, Receipt, SlackNotifier
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.faults.killer import WriteKiller
from tests.faults.outbox import store_hits
from tests.ops.daemon import Daemon, free_port, http_get, wait_for_http
from tests.support import SlackStandIn


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


@pytest.mark.sqlite_files
@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_a_new_connection_never_opens_a_sqlite_file_deleted_or_replaced_under_the_store(
        tmp_path: Path, change: str) -> None:
    # The daemon's passes run at once, so the pool opens a second connection while the
    # first is in use. Opening it on the path after the file went would create an empty
    # file there (deleted), or take the restored copy with the old file's -wal and -shm
    # (replaced); closing that connection then checkpoints the old WAL into the new file
    # and deletes the WAL the open connection still reads its recent writes from.
    db = tmp_path / "w.db"
    store = Store.open(f"sqlite:///{db}")
    try:
        store_hits(store, rule="quake", notifiers=["desk"], keys=["q1"], now=datetime.now(UTC))
        with store.engine.connect() as in_use:  # checked out before the file changes
            if change == "deleted":
                db.unlink()
            else:  # a copy put in its place, as a restore by `cp` + `mv` does
                shutil.copy(db, tmp_path / "restored.db")
                (tmp_path / "restored.db").replace(db)
            restored = None if change == "deleted" else db.read_bytes()
            with pytest.raises(StoreError, match=f"database {db} was {change}"), \
                    store.engine.connect():
                pass
            assert in_use.exec_driver_sql("SELECT count(*) FROM deliveries").scalar() == 1
        if change == "deleted":
            assert not db.exists(), "a connection created an empty file in its place"
        else:
            assert db.read_bytes() == restored, "a connection wrote into the restored file"
    finally:
        store.close()


class Outage:
    """A TCP forwarder to the PostgreSQL server on a port of its own: ``down()`` cuts
    every connection through it and refuses new ones, ``up()`` listens again, so one
    test's database goes away without touching the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.port = 0
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(50)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _wait_for_health(url: str, status: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        got, body = http_get(url)
        if got == status:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {got}: {body}"
        time.sleep(0.05)


def test_postgresql_gone_for_a_while_is_503_then_the_daemon_recovers_on_its_own(
        tmp_path: Path, fresh_postgres_url: str) -> None:  # noqa: F811
    url = make_url(fresh_postgres_url)
    outage = Outage((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(host="127.0.0.1", port=outage.port).render_as_string(hide_password=False)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(f'database: "{through}"\nhttp:\n  listen: 127.0.0.1:{port}\n'
                      "feeds:\n  - name: dw\n    url: http://127.0.0.1:9/dw\n")
    daemon = Daemon(config, env={})
    health = f"http://127.0.0.1:{port}/healthz"
    try:
        daemon.wait_for_log("started feeds=1")
        assert wait_for_http(health)[0] == 200
        outage.down()
        assert "database: OperationalError" in _wait_for_health(health, 503)
        daemon.wait_for_log("pass=poll failed")
        outage.up()
        assert "database answers" in _wait_for_health(health, 200)
        daemon.wait_for_log("pass=poll recovered")
        assert daemon.process.poll() is None, "the daemon died"
    finally:
        daemon.stop()
        outage.down()
