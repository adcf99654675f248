"""Several instances on one database: feed leases, who polled last, cluster-wide job runs.

``feeds`` gains ``lease_owner``, ``lease_until`` and ``last_polled_by`` (all
nullable: existing rows start unleased); ``job_runs`` records which instance
ran each run of a cluster-wide job (docs/scaling.md). Each step checks first,
like 0002, so a database created by ``create_all`` of a build in between
upgrades too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _has_table(table: str) -> bool:
    return table in _inspector().get_table_names()


def _has_column(table: str, column: str) -> bool:
    return column in {c["name"] for c in _inspector().get_columns(table)}


def upgrade() -> None:
    if not _has_table('job_runs'):
        op.create_table('job_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('run_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job', 'run_key', name='uq_job_runs_job_key')
        )
    columns: list[sa.Column[Any]] = [
        sa.Column('lease_owner', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column('lease_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('last_polled_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    ]
    for column in columns:
        if not _has_column('feeds', column.name):
            op.add_column('feeds', column)


def downgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        for name in ('last_polled_by', 'lease_until', 'lease_owner'):
            batch.drop_column(name)
    op.drop_table('job_runs')
