"""Deliveries record the feeds their message named for its story.

``deliveries`` gains ``listed_sources`` (nullable JSON text): a story update for
a feed the original message already named has nothing to add. Rows sent before
this revision keep NULL and are judged by their send time, as before. Checks
first, like 0002 and 0003, so a database created by ``create_all`` of a build in
between upgrades too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _has_column(table: str, column: str) -> bool:
    return column in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if not _has_column('deliveries', 'listed_sources'):
        op.add_column('deliveries', sa.Column('listed_sources', sqlmodel.sql.sqltypes.AutoString(),
                                              nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('listed_sources')
