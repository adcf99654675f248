"""What the query groups stand on: ``StoreBase``, holding the engine and its dialect,
with the statements more than one group builds (a dialect's INSERT, the lease that
claims outbox rows), and the helpers they share.

Also here: ``StoreError``, ``utcnow``, the SQLite and PostgreSQL connection
settings, ``retried`` (a transaction the server aborted to be run again is), and the
readers of what the database hands back (``_aware``, ``_rowcount``, ``_row_id``).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast, overload

from sqlalchemy import Engine, event, make_url, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlmodel import Session, SQLModel, col
from sqlmodel.sql.expression import SelectOfScalar

from monitor.store.tables import SENDING, OutboxTable

log = logging.getLogger("wirewatch.store")

P = ParamSpec("P")
R = TypeVar("R")


class StoreError(Exception):
    """The database could not be opened or answered with an error."""


#: Ids bound in one IN list. SQLite (32,766) and PostgreSQL (65,535) cap the bound
#: parameters of a statement; a digest of a broad rule over thousands of feeds can
#: hold more rows than that.
IDS_PER_STATEMENT = 1000


def id_chunks(ids: Sequence[int]) -> list[list[int]]:
    """``ids`` in lists short enough for one IN clause each."""
    listed = list(ids)
    return [listed[i:i + IDS_PER_STATEMENT] for i in range(0, len(listed), IDS_PER_STATEMENT)]


def utcnow() -> datetime:
    return datetime.now(UTC)


#: The SQLSTATEs with which PostgreSQL aborts a transaction that may well succeed when
#: run again: serialization_failure and deadlock_detected (the victim the server chose
#: among transactions waiting for each other's locks). Its documentation asks the
#: client to retry them; nothing of the transaction was kept.
RETRIED_SQLSTATES = frozenset({"40001", "40P01"})
#: Runs of one transaction in all, the first included.
TRANSACTION_RUNS = 5
#: Before the second run; doubled before each further one, with jitter, so that two
#: transactions aborted by one deadlock do not meet again at once: 0.3 s in all at most.
FIRST_RERUN_WAIT = 0.02


def _retried_sqlstate(exc: DBAPIError) -> str | None:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate if sqlstate in RETRIED_SQLSTATES else None


def retried(method: Callable[P, R]) -> Callable[P, R]:
    """Run the store method ``method`` again when the server aborts its transaction
    with one of RETRIED_SQLSTATES, up to TRANSACTION_RUNS times in all.

    Instances meet where they claim alerts and feeds, renew leases, record polls, admit
    alerts and take pacing slots, and the server may abort one of two transactions
    there (a deadlock: rows locked in opposite orders). Not run again, an aborted
    admission left the alerts its channel had claimed unsent until their claim ran
    out (2 minutes). ``method`` must be a whole transaction, or a transaction followed
    by reads (which READ COMMITTED never aborts so); callbacks it is given run again
    with it.
    """

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        runs = 1
        while True:
            try:
                return method(*args, **kwargs)
            except DBAPIError as exc:
                sqlstate = _retried_sqlstate(exc)
                if sqlstate is None or runs >= TRANSACTION_RUNS:
                    raise
                detail = str(exc.orig).splitlines()[0] if str(exc.orig) else ""
                wait = FIRST_RERUN_WAIT * 2 ** (runs - 1) * random.uniform(0.5, 1.0)
                log.warning("%s: the database aborted the transaction (%s) %s; running it "
                            "again in %.2fs (%d of %d)", method.__name__, sqlstate, detail,
                            wait, runs + 1, TRANSACTION_RUNS)
            time.sleep(wait)
            runs += 1

    return run


@overload
def _aware(value: datetime) -> datetime: ...
@overload
def _aware(value: None) -> None: ...
def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; everything we store is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _install_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, open transactions, so
        # every write transaction is BEGIN IMMEDIATE: a CLI command run next to
        # the daemon then waits for the write lock instead of failing with
        # "database is locked" half-way through a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _enter_wal_mode(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _enter_wal_mode(cursor: sqlite3.Cursor, wait_s: float = 30.0) -> None:
    """Put the database in WAL mode, waiting while another connection writes.

    Changing the journal mode takes an exclusive lock, and SQLite answers "database
    is locked" at once, without the busy timeout, when another connection holds the
    write lock meanwhile: two processes opening a new database file together (a CLI
    command beside a starting daemon) would fail. The mode is kept in the file, so
    once it is WAL nothing here takes a lock again.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


#: libpq waits for ever by default: a server gone silent (packets dropped by a network
#: partition or a dead host, not refused) would hold a store call, and with it the
#: daemon's event loop, for good. These bound the wait wherever the URL does not
#: set its own.
POSTGRES_TIMEOUTS: dict[str, int] = {
    "connect_timeout": 10,  # seconds to connect
    "keepalives": 1,  # probe an idle connection: 30 s, then every 10 s, 3 misses
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms sent data may go unacknowledged
}


def postgres_connect_args(url: str) -> dict[str, int]:
    """The timeouts of POSTGRES_TIMEOUTS that a PostgreSQL ``url`` does not set itself."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    return {key: value for key, value in POSTGRES_TIMEOUTS.items() if key not in parsed.query}


#: The server's side of a session of a process that died inside a transaction. Its
#: locks (claimed rows, the admission and story assignment locks) outlive the process
#: until the server ends the session, and the other instances wait for them: row
#: locks are skipped by claims, so alerts stay unsent, and an admission or a story's
#: first alert waits for the lock, with it a whole instance. By default the server
#: notices a dead client only when it next reads from the connection (after a
#: statement ends), or, for a machine gone without closing it, after hours of TCP
#: keepalive.
POSTGRES_SESSION_SETTINGS: dict[str, str] = {
    # A transaction open with no statement running: its client is gone without a word
    # (a machine powered off or cut off; a process killed on a live machine has its
    # connection closed by the kernel, which the server sees at once). wirewatch runs
    # only its own code between the statements of a transaction, never the network,
    # but that code can be long: a poll's new items are matched against every rule
    # inside the poll's transaction, tens of seconds for a huge first poll against
    # 100,000 rules on a busy machine. So the bound is minutes, not seconds: far below
    # hours of TCP keepalive, far above any matching.
    "idle_in_transaction_session_timeout": "5min",
    # A statement running, or waiting for a lock, when its client was killed: the
    # server looks at the connection this often while it works (PostgreSQL 14 and
    # later; a poll of the socket).
    "client_connection_check_interval": "5s",
}


def _install_postgres_session_settings(engine: Engine) -> None:
    """Give every new connection of ``engine`` POSTGRES_SESSION_SETTINGS, each one
    nobody else has chosen a value for."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # Source "default": not set in the server's configuration, for the database
            # or role (ALTER ... SET), or by the URL's options; those win. A setting
            # the server does not know (an older version) is not listed at all.
            cursor.execute("SELECT name FROM pg_settings WHERE source = 'default'"
                           " AND name = ANY(%s)", (sorted(POSTGRES_SESSION_SETTINGS),))
            for (name,) in cursor.fetchall():
                cursor.execute("SELECT set_config(%s, %s, false)",
                               (name, POSTGRES_SESSION_SETTINGS[name]))
        finally:
            cursor.close()
        dbapi_connection.commit()


def _watch_sqlite_file(engine: Engine, url: str) -> None:
    """Refuse every use of the engine once its SQLite file is deleted or replaced.

    Open connections keep the old file, so a daemon would go on writing to a file no
    one can see any more (deleted), or to a different one than its next connection
    (replaced by a restore), and lose all of it on restart, its items seen as new
    again. Checked on each checkout from the pool: one stat.
    """
    path = sqlite_path(url)
    if path is None:
        return
    opened = _file_identity(path)

    def refuse_if_changed() -> None:
        now = _file_identity(path)
        if now != opened:
            what = "deleted" if now is None else "replaced by another file"
            raise StoreError(
                f"database {path} was {what} while wirewatch was running: stop wirewatch, "
                "put the database back (docs/deploy.md, Backups) and start it again; "
                "until then nothing is stored")

    # Checked before a new connection opens the path, not only on checkout: opening
    # it creates an empty file where one was deleted, or pairs a restored copy with
    # the old file's -wal and -shm; closing that connection again then checkpoints the
    # old WAL into the new file and deletes it under the connections still open, whose
    # recent writes were in it ("no such table").
    @event.listens_for(engine, "do_connect")
    def _on_connect(_dialect: Any, _record: Any, _args: Any, _kwargs: Any) -> None:
        refuse_if_changed()

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        refuse_if_changed()


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class StoreBase:
    """The engine every query group runs on; the groups and ``Store`` extend it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    def _insert(self, table: type[SQLModel]) -> Any:
        dialect = postgresql if self._dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def _lease(self, session: Session, table: OutboxTable, ids_query: SelectOfScalar[int | None],
               *, now: datetime, lease: timedelta, claimer: str,
               returning: Sequence[Any] | None = None) -> Result[*tuple[Any, ...]]:
        """Claim the outbox rows ``ids_query`` selects: one UPDATE … RETURNING.

        On PostgreSQL the selected rows are locked with SKIP LOCKED, so instances
        claiming at once take disjoint rows instead of waiting for each other.
        """
        if self._dialect == "postgresql":
            ids_query = ids_query.with_for_update(skip_locked=True)
        return session.execute(
            update(table)
            .where(col(table.id).in_(ids_query.scalar_subquery()))
            .values(status=SENDING, claimed_until=now + lease, claimed_by=claimer,
                    attempts=col(table.attempts) + 1)
            .returning(*(returning or (col(table.id),)))
        )


def _rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE or DELETE matched."""
    # sqlmodel types Session.execute as returning a plain Result; for a DML statement
    # SQLAlchemy returns a CursorResult, which is what carries rowcount.
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _row_id(value: int | None) -> int:
    """The primary key of a row read from the database (None only before its insert)."""
    assert value is not None
    return value


def describe_database_error(url: str, exc: SQLAlchemyError) -> str:
    """``exc`` from the database at ``url``, in words an operator can act on, the
    URL's password masked. SQLite itself says only "unable to open database file" for
    a missing or read-only directory, and "malformed" for a damaged file."""
    detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    reason = f"{exc.__class__.__name__}: {detail}"
    path = sqlite_path(url)
    if path is not None:
        reason = _sqlite_file_problem(path, detail) or reason
    return f"database {_redact(url)}: {reason}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite ``url``, absolute; None for other databases and memory."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" \
            or name.startswith("file:"):
        return None
    return Path(name).absolute()


def _sqlite_file_problem(path: Path, detail: str) -> str | None:
    if "database is locked" in detail:
        # Only after the 30 s busy timeout: something holds a transaction open.
        return (f"another process held the write lock on {path} for over 30 s: close any "
                "`sqlite3` shell or backup tool left inside a transaction on it; to run "
                "several wirewatch instances, use PostgreSQL (docs/scaling.md)")
    if "not a database" in detail or "malformed" in detail:
        return (f"{path} is damaged or not an SQLite database ({detail}): stop wirewatch, "
                f'check it with `sqlite3 {path} "PRAGMA integrity_check"` and restore the '
                "latest backup (docs/deploy.md, Backups)")
    directory = path.parent
    if not directory.is_dir():
        return (f"the directory {directory} does not exist: create it (writable by the "
                "user wirewatch runs as), or correct the path in `database`")
    # In WAL mode SQLite writes the -wal and -shm files beside the database, so even
    # an existing, writable database needs a writable directory.
    if not os.access(directory, os.W_OK | os.X_OK):
        return (f"the directory {directory} is not writable by this user: SQLite keeps "
                "the database and its -wal and -shm files there, so make it writable "
                "(under systemd, ReadWritePaths=)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user: fix its owner or mode"
    return None


def _redact(url: str) -> str:
    """Hide a password in a database URL before it reaches a message."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
