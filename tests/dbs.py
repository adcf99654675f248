"""Real databases for tests: a SQLite file per test, and a PostgreSQL database per run.

The PostgreSQL half runs when ``WIREWATCH_TEST_DATABASE_URL`` points at a server
(any database on it: a fresh ``wirewatch_test_*`` database is created for the
run and dropped after). Without it those cases skip, saying how to enable
them, except under CI (``CI=true``), where they are required.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

ENV = "WIREWATCH_TEST_DATABASE_URL"
HOW_TO = (f"set {ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/postgres "
          "to run the PostgreSQL cases")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    server_url = os.environ.get(ENV)
    if not server_url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {HOW_TO}")
        pytest.skip(HOW_TO)
    name = f"wirewatch_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
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
