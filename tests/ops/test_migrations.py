"""Schema migrations on real SQLite files and a real PostgreSQL database.

The oldest supported schema is the walking skeleton's (revision 0001), as a
database made before migrations existed has it: no ``alembic_version`` table.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect, text
from sqlmodel import SQLModel

from monitor.cli import main
from monitor.schema import alembic_config, current_revision, head_revision, upgrade_schema
from monitor.store import SENT, Store, StoreError
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

T0 = datetime(2026, 2, 17, 18, 0, tzinfo=UTC)


@pytest.fixture
def empty_url(database_url: str) -> str:  # noqa: F811
    """The database with nothing at all in it, alembic_version included."""
    engine = create_engine(database_url)
    reflected = MetaData()
    reflected.reflect(engine)
    reflected.drop_all(engine)
    engine.dispose()
    return database_url


def _skeleton_database(url: str) -> None:
    """Build the 0001 schema the way the skeleton's create_all left it, and fill it."""
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(text("DROP TABLE alembic_version"))
        connection.execute(text(
            "INSERT INTO feeds (id, name, url, enabled, etag, next_poll_at, consecutive_failures,"
            " items_total, created_at) VALUES (1, 'dw', 'https://example.org/dw', :yes, '\"v7\"',"
            " :t, 0, 2, :t), (2, 'bbc', 'https://example.org/bbc', :no, NULL, :t, 3, 0, :t)"),
            {"t": T0, "yes": True, "no": False})
        connection.execute(text(
            "INSERT INTO items (id, feed_id, item_key, guid, link, title, summary, content,"
            " author, categories, published_at, first_seen_at) VALUES"
            " (1, 1, 'guid:cd-1001', 'cd-1001', 'https://example.org/1', 'Armenia and the CSTO',"
            " 'withdraw', '', '', '[\"world\"]', :t, :t),"
            " (2, 1, 'guid:cd-1002', 'cd-1002', NULL, 'Quake', '', '', '', '[]', NULL, :t)"),
            {"t": T0})
        connection.execute(text(
            "INSERT INTO hits (id, rule, item_id, severity, matched_terms, snippet, marks,"
            " created_at) VALUES (1, 'csto-exit', 1, 'high', '[]', 'withdraw', '[]', :t)"),
            {"t": T0})
        connection.execute(text(
            "INSERT INTO deliveries (id, hit_id, notifier, status, attempts, next_attempt_at,"
            " created_at, sent_at, external_id) VALUES"
            " (1, 1, 'desk', 'sent', 1, :t, :t, :t, '1700000000.000100'),"
            " (2, 1, 'mail', 'pending', 0, :t, :t, NULL, NULL)"), {"t": T0})
    engine.dispose()


def test_skeleton_database_upgrades_without_losing_anything(empty_url: str) -> None:
    _skeleton_database(empty_url)

    store = Store.open(empty_url)  # upgrades
    try:
        with store.engine.connect() as connection:
            assert current_revision(connection) == head_revision()
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        assert diff == []
        feeds = {f.name: f for f in store.feeds()}
        assert (feeds["dw"].etag, feeds["dw"].items_total, feeds["dw"].enabled) == (
            '"v7"', 2, True)
        assert (feeds["bbc"].consecutive_failures, feeds["bbc"].enabled) == (3, False)
        assert (feeds["dw"].redirect_streak, feeds["dw"].gone) == (0, False)  # new, defaulted
        items = {i.item_key: i for i in store.iter_items(since=T0 - timedelta(days=1))}
        assert items["guid:cd-1001"].title == "Armenia and the CSTO"
        assert items["guid:cd-1001"].categories == ("world",)
        assert items["guid:cd-1001"].published_at == T0
        assert {d["notifier"]: d["status"] for d in store.deliveries()} == {
            "desk": SENT, "mail": "pending"}
        # The upgraded database works: the pending delivery is claimed and sent.
        (claimed,) = store.claim_deliveries(now=T0 + timedelta(minutes=1),
                                            lease=timedelta(minutes=2), claimer="t")
        assert (claimed.rule, claimed.title, claimed.severity) == (
            "csto-exit", "Armenia and the CSTO", "high")
    finally:
        store.close()

    reopened = Store.open(empty_url)  # a second open finds it current
    reopened.close()


def test_migrations_from_nothing_equal_the_models(empty_url: str) -> None:
    """Fails when a model changes without a migration: the diff says what to write."""
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree; add a migration for: {diff}"


def test_new_database_is_created_and_stamped_at_head(empty_url: str) -> None:
    engine = create_engine(empty_url)
    assert upgrade_schema(engine, SQLModel.metadata) == "created"
    assert upgrade_schema(engine, SQLModel.metadata) == "current"
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert {"feeds", "items", "hits", "deliveries"} <= set(inspect(connection)
                                                                .get_table_names())
    engine.dispose()


@pytest.mark.parametrize("revision", ["0001", "0002", "0003", "0004"])
def test_versioned_database_upgrades_from_each_revision(empty_url: str,
                                                        revision: str) -> None:
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    assert upgrade_schema(engine, SQLModel.metadata) == f"upgraded from {revision}"
    engine.dispose()


def test_database_upgraded_by_a_newer_version_is_refused_with_what_to_do(
        empty_url: str, tmp_path: Path) -> None:
    # In a rolling upgrade the first new instance upgrades the schema; an instance of
    # the old version (re)starting after that must say why it cannot, not crash.
    Store.open(empty_url).close()
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_later'"))
    engine.dispose()

    with pytest.raises(StoreError, match=r"revision 9999_later.*newer wirewatch"):
        Store.open(empty_url)

    config = tmp_path / "config.yaml"
    config.write_text(f'database: "{empty_url}"\nfeeds:\n  - name: wire\n'
                      "    url: http://127.0.0.1:9/wire.xml\nrules:\n  - name: r\n    query: x\n")
    for command_line in (["feeds"], ["run", "--once", "--deliver-timeout", "0"]):
        err = io.StringIO()
        code = main(["--config", str(config), *command_line], stdout=io.StringIO(), stderr=err,
                    environ={})
        assert code == 1, err.getvalue()
        assert "newer wirewatch has upgraded it" in err.getvalue()
    engine = create_engine(empty_url)
    with engine.connect() as connection:
        assert current_revision(connection) == "9999_later"  # left as it was
    engine.dispose()
