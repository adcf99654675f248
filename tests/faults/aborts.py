"""Making PostgreSQL abort a transaction of wirewatch's with the error it gives a
deadlock's victim (40P01) or a serialization failure (40001), at a chosen point.

Such aborts come from races between instances (rows locked in opposite orders, a
database whose default isolation is stricter than READ COMMITTED) that no test can
time. A trigger in the test's own database raises the same SQLSTATE when the first
rows of the chosen kind are written: to the process it is the server aborting its
transaction, and the rows it wrote go with it.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text

from tests.faults.sessions import Rows

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"


class Aborts:
    def __init__(self, url: str) -> None:
        self._engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with self._engine.connect() as connection:
            # TG_ARGV: the sequence counting the rows, the SQLSTATE, how many to abort.
            # A sequence ignores the rollback of the transaction it aborts.
            connection.execute(text("""
                CREATE OR REPLACE FUNCTION test_abort() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN
                    IF nextval(TG_ARGV[0]) <= TG_ARGV[2]::int THEN
                        RAISE EXCEPTION 'aborted by the test at %', TG_ARGV[0]
                            USING ERRCODE = TG_ARGV[1];
                    END IF;
                    RETURN NULL;
                END $$"""))
        self._times: dict[str, int] = {}

    def arm(self, name: str, rows: Rows, *, sqlstate: str, times: int = 1) -> None:
        """Abort the transactions writing the first ``times`` of ``rows`` with
        ``sqlstate``; ``name`` names the point."""
        with self._engine.connect() as connection:
            connection.execute(text(f"CREATE SEQUENCE abort_{name}"))
            connection.execute(text(rows.trigger(
                f"abort_{name}", f"test_abort('abort_{name}', '{sqlstate}', '{times}')")))
        self._times[name] = times

    def fired(self, name: str) -> int:
        """How many transactions the point ``name`` has aborted so far."""
        with self._engine.connect() as connection:
            value, called = connection.execute(
                text(f"SELECT last_value, is_called FROM abort_{name}")).one()
        return min(int(value) if called else 0, self._times[name])

    def close(self) -> None:
        self._engine.dispose()
