"""Holding a wirewatch process at one exact point of a database transaction, and
cutting it off there as a crash or a vanished machine does.

:class:`Gate` puts a trigger in the test's own database: the first row that fires it
waits for an advisory lock the test holds, so the process that wrote the row stops
right there, inside its open transaction, with everything it locked so far still
locked (visible in ``pg_locks`` as a waiting advisory lock). The test then kills the
process, and opens the gate or keeps it shut.

:class:`Vanishing` stands between a process and the server as a vanished machine
would: once the process's end of a connection closes, the server's end stays open
and silent, so the server never learns that its client is gone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from sqlalchemy import Engine, create_engine, text

from monitor.store.outbox import ADMISSION_LOCK_CLASS
from monitor.store.stories import STORY_LOCK_KEY

# The gate's two-key advisory lock ("kl" in ASCII); wirewatch's own two-key locks use
# the class ADMISSION_LOCK_CLASS, its one-key locks a space of their own.
GATE_CLASS, GATE_KEY = 0x6B6C, 1


class Rows(NamedTuple):
    """Rows a trigger fires for: ``AFTER <event> ON <table> FOR EACH ROW [WHEN (<when>)]``."""

    table: str
    event: str
    when: str | None = None

    def trigger(self, name: str, call: str) -> str:
        """The statement creating trigger ``name`` that runs ``call`` for these rows."""
        condition = f"WHEN ({self.when}) " if self.when else ""
        return (f"CREATE TRIGGER {name} AFTER {self.event} ON {self.table} FOR EACH ROW "
                f"{condition}EXECUTE FUNCTION {call}")


def wait_until(condition: Callable[[], object], *, timeout: float, what: str,
               every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


class Gate:
    """A trigger on ``rows`` that makes the first row through it wait until :meth:`open`;
    later rows pass (a sequence counts them, and a sequence ignores rollbacks, so a
    retry after the victim's death passes)."""

    def __init__(self, url: str, rows: Rows) -> None:
        self._engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with self._engine.connect() as connection:
            connection.execute(text("CREATE SEQUENCE IF NOT EXISTS test_gate_passed"))
            connection.execute(text(f"""
                CREATE OR REPLACE FUNCTION test_gate() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    IF nextval('test_gate_passed') = 1 THEN
                        PERFORM pg_advisory_xact_lock({GATE_CLASS}, {GATE_KEY});
                    END IF;
                    RETURN NULL;
                END $$"""))
            connection.execute(text(rows.trigger("test_gate", "test_gate()")))
        # Held on a session of its own, outside any transaction, until open().
        self._holder = self._engine.connect()
        self._holder.execute(text("SELECT pg_advisory_lock(:c, :k)"),
                             {"c": GATE_CLASS, "k": GATE_KEY})

    def waiter(self, timeout: float = 60.0) -> int:
        """The backend pid of the transaction stopped at the gate, once one is."""
        found: list[int] = []

        def someone_waits() -> bool:
            found[:] = self.sql(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND classid = :c AND objid = :k AND objsubid = 2",
                c=GATE_CLASS, k=GATE_KEY)
            return bool(found)

        wait_until(someone_waits, timeout=timeout, what="a transaction at the gate")
        return found[0]

    def open(self) -> None:
        if not self._holder.closed:
            self._holder.execute(text("SELECT pg_advisory_unlock(:c, :k)"),
                                 {"c": GATE_CLASS, "k": GATE_KEY})
            self._holder.close()

    def sql(self, statement: str, **params: object) -> list[int]:
        """The first column of each row ``statement`` returns (from a connection of
        the test's, outside the gate)."""
        with self._engine.connect() as connection:
            return list(connection.execute(text(statement), params).scalars())

    def backend(self, pid: int) -> str | None:
        """The state of backend ``pid`` ("active", "idle in transaction", ...); None
        once it is gone."""
        states = self.sql("SELECT state FROM pg_stat_activity WHERE pid = :pid", pid=pid)
        return str(states[0]) if states else None

    def holds_admission_lock(self, pid: int) -> bool:
        """Whether backend ``pid`` holds a two-key admission lock (Store.admit_unless_held)."""
        return bool(self.sql(
            "SELECT 1 FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' AND granted"
            " AND classid = :c AND objsubid = 2", pid=pid, c=ADMISSION_LOCK_CLASS))

    def holds_story_lock(self, pid: int) -> bool:
        """Whether backend ``pid`` holds the story assignment lock (STORY_LOCK_KEY)."""
        return bool(self.sql(
            "SELECT 1 FROM pg_locks WHERE pid = :pid AND locktype = 'advisory' AND granted"
            " AND classid = :high AND objid = :low AND objsubid = 1",
            pid=pid, high=STORY_LOCK_KEY >> 32, low=STORY_LOCK_KEY & 0xFFFFFFFF))

    def close(self) -> None:
        self.open()
        self._engine.dispose()


class Vanishing:
    """A TCP forwarder to the server on a port of its own. While a client lives, bytes
    go both ways; when the client's end closes (its process was killed), the server's
    end stays open, read and discarded, and nothing is sent to it: as after a
    machine vanished (powered off, cut off by a partition), the server sees a quiet
    client, not a closed connection. :meth:`close` ends it all."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(50)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client), daemon=True).start()

    @staticmethod
    def _to_server(client: socket.socket, server: socket.socket) -> None:
        # On the client's EOF the server is told nothing: no FIN is passed on.
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                server.sendall(data)

    @staticmethod
    def _to_client(server: socket.socket, client: socket.socket) -> None:
        # What the server sends after the client died is taken off its hands, as the
        # network would, so that it never blocks writing.
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                with contextlib.suppress(OSError):
                    client.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
