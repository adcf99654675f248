"""Shared fixtures: real loopback servers and the feed corpus.

Every server fixture is function-scoped (a fresh server per test, so recorded requests
and scripted failures never leak between tests) and bound to 127.0.0.1 on a free port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbs import sqlite_on_postgres  # noqa: F401  (fixture)
from tests.support import FeedServer, SlackStandIn, SmtpServer

CORPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"


@pytest.fixture(autouse=True)
def _database_pass(sqlite_on_postgres: None) -> None:  # noqa: F811
    """WIREWATCH_TEST_DATABASE=postgresql runs the suite's SQLite stores on PostgreSQL
    (tests/dbs.py); otherwise nothing changes."""


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """An HTTP server for feeds; add routes with `set_route` / `serve_file`."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def slack_standin() -> Iterator[SlackStandIn]:
    """A Slack Web API stand-in; use `base_url`, `token` and `webhook_url`."""
    with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server (no TLS, no AUTH) collecting messages."""
    with SmtpServer(security="none") as server:
        yield server


@pytest.fixture
def smtp_starttls_server() -> Iterator[SmtpServer]:
    """An SMTP server that requires STARTTLS; verify it with `ca_file`."""
    with SmtpServer(security="starttls") as server:
        yield server


@pytest.fixture
def corpus_dir() -> Path:
    """The shared real-feed corpus (../shared/corpus/feeds beside the clone)."""
    if not CORPUS_DIR.is_dir():
        pytest.skip(
            f"feed corpus not found at {CORPUS_DIR}; "
            "check out the shared/ directory beside the repository"
        )
    return CORPUS_DIR
