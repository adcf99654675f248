"""Schema versions: bring any wirewatch database up to the code's schema, keeping its rows.

Alembic migrations live in ``monitor/migrations/versions`` (one file per
change, each naming the one before). :func:`upgrade_schema` runs on every
``Store.open``:

- an empty database gets the current tables at once and is stamped at head;
- a database from before migrations (tables, no ``alembic_version``) is
  stamped at the oldest supported schema, ``0001`` (the walking skeleton),
  then upgraded: ``0002`` checks before each step, so any build in between
  upgrades too;
- a versioned database is upgraded to head.

A database already at a revision this code does not know (a newer wirewatch
upgraded it, as another instance does first in a rolling upgrade) is refused
with :class:`SchemaError`, never changed.

Adding a column later is one new file in ``versions/`` (docs/operations.md
says how to generate it); tests/ops/test_migrations.py fails while the models
and the migrations disagree.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text

log = logging.getLogger("wirewatch.schema")

MIGRATIONS = Path(__file__).parent / "migrations"
OLDEST_SUPPORTED = "0001"
#: Any number: the key of the PostgreSQL advisory lock that serializes upgrades.
_PG_LOCK = 0x77697265


class SchemaError(Exception):
    """The database's schema cannot be brought to this version's."""


def alembic_config(connection: Connection | None = None,
                   metadata: MetaData | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["metadata"] = metadata
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine, metadata: MetaData) -> str:
    """Create or upgrade the schema; returns what was done (for logs and tests)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two processes starting on a new database must not both create it.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        tables = set(inspect(connection).get_table_names())
        config = alembic_config(connection, metadata)
        if "feeds" not in tables:
            # Empty (a version table left alone, with no tables, counts as empty).
            metadata.create_all(connection)
            command.stamp(config, "head", purge=True)
            return "created"
        if "alembic_version" not in tables:
            log.info("database predates schema versions: treating it as %s", OLDEST_SUPPORTED)
            command.stamp(config, OLDEST_SUPPORTED)
        before = current_revision(connection)
        if before == head_revision():
            return "current"
        _refuse_unknown(before)
        log.info("upgrading database schema from %s to %s", before, head_revision())
        command.upgrade(config, "head")
        return f"upgraded from {before}"


def _refuse_unknown(revision: str | None) -> None:
    # alembic would fail with a traceback deep in its revision map, after the
    # instance had half started; say instead which version is needed.
    script = ScriptDirectory.from_config(alembic_config())
    if revision is None or revision in {r.revision for r in script.walk_revisions()}:
        return
    raise SchemaError(
        f"its schema is at revision {revision}, which this wirewatch does not know (its "
        f"newest is {head_revision()}): a newer wirewatch has upgraded it. Run that "
        "version here too; going back to an older one needs the backup taken before "
        "the upgrade (docs/operations.md, Upgrades and schema migrations)")
