"""Pacing slots shared by the instances on one database.

``channel_slots`` holds each channel's next free send slot (monitor.pacing's
``SharedPacer``), so several instances posting to one Slack channel keep its pace
together. Checks first, like 0002-0004, so a database created by ``create_all`` of
a build in between upgrades too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if 'channel_slots' not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table('channel_slots',
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('next_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )


def downgrade() -> None:
    op.drop_table('channel_slots')
