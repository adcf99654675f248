"""Real databases for tests: a SQLite file per test, and a PostgreSQL database per run.

The PostgreSQL half runs when ``WIREWATCH_TEST_DATABASE_URL`` points at a server
(any database on it: a fresh ``wirewatch_test_*`` database is created for the
run and dropped after). Without it those cases skip, saying how to enable
them, except under CI (``CI=true``), where they are required.

``WIREWATCH_TEST_DATABASE`` picks a pass over the whole suite (``.ci/run`` runs both):

- unset: ``database_url`` tests run on both kinds; everything else on SQLite;
- ``sqlite``: ``database_url`` tests on SQLite only;
- ``postgresql``: ``database_url`` tests on PostgreSQL only, and every store a
  test opens in-process on a new SQLite file (``Store.open("sqlite:///…")``,
  the tests' configs included) is opened on a PostgreSQL database of its own
  instead (:func:`sqlite_on_postgres`). A SQLite file that already exists,
  i.e. one a ``wirewatch`` subprocess created, stays SQLite, so a test and
  its subprocesses keep seeing the same database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

ENV = "WIREWATCH_TEST_DATABASE_URL"
PASS = "WIREWATCH_TEST_DATABASE"
HOW_TO = (f"set {ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/postgres "
          "to run the PostgreSQL cases")


def database_kinds() -> list[str]:
    """The kinds ``database_url`` runs on in this pass."""
    chosen = os.environ.get(PASS, "")
    if chosen not in ("", "sqlite", "postgresql"):
        raise pytest.UsageError(f"{PASS}={chosen!r}: expected sqlite or postgresql")
    return [chosen] if chosen else ["sqlite", "postgresql"]


def _server_url() -> str:
    server_url = os.environ.get(ENV)
    if not server_url:
        if os.environ.get("CI") == "true" or os.environ.get(PASS) == "postgresql":
            pytest.fail(f"PostgreSQL is required in CI and in the PostgreSQL pass: {HOW_TO}")
        pytest.skip(HOW_TO)
    return server_url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with _database(_server_url()) as url:
        yield url


@pytest.fixture(params=database_kinds())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wirewatch.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    # Import the tables so drop_all knows them, then start each test from empty.
    import monitor.store  # noqa: F401

    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of its own for one test, dropped after (for tests whose
    processes share one database, e.g. several ``wirewatch run`` instances)."""
    with _database(_server_url()) as url:
        yield url


@pytest.fixture
def sqlite_on_postgres(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    """In the PostgreSQL pass, ``Store.open`` of a new SQLite file opens a fresh
    PostgreSQL database instead (one per file, dropped after the test).

    Tests marked ``sqlite_files`` are about SQLite files themselves (a missing
    directory, a damaged file): they keep their stores on SQLite in every pass.
    """
    if os.environ.get(PASS) != "postgresql" or request.node.get_closest_marker("sqlite_files"):
        yield
        return
    from monitor.store import Store

    server_url = _server_url()
    opened = Store.open.__func__  # type: ignore[attr-defined]
    databases: dict[str, tuple[str, AbstractContextManager[str]]] = {}

    def open_on_postgres(cls: type[Store], url: str, *, create: bool = True) -> Store:
        path = make_url(url).database if url.startswith("sqlite") else None
        # A report's open (create=False) of a file no store made stays on SQLite, and
        # fails there as it would in the SQLite pass.
        if path and path != ":memory:" and (
                path in databases or (create and not Path(path).exists())):
            if path not in databases:
                database = _database(server_url)
                databases[path] = (database.__enter__(), database)
            url = databases[path][0]
        return opened(cls, url, create=create)  # type: ignore[no-any-return]

    monkeypatch.setattr(Store, "open", classmethod(open_on_postgres))
    try:
        yield
    finally:
        for _, database in databases.values():
            database.__exit__(None, None, None)


@contextmanager
def _database(server_url: str) -> Iterator[str]:
    name = f"wirewatch_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
