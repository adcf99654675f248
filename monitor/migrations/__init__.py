"""Alembic migrations of the wirewatch database (see monitor.schema and docs/operations.md)."""
