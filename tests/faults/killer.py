"""Cutting off a write on a test's own PostgreSQL database, as a failover or a server
restart ends a connection in the middle of a transaction."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, create_engine, text


class WriteKiller:
    """Kills the next write to ``table``: holds an exclusive lock on it, terminates the
    first other backend that waits for the lock, then lets go."""

    def __init__(self, url: str) -> None:
        self._engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self._threads: list[threading.Thread] = []
        self.killed: list[int] = []

    def arm(self, table: str) -> None:
        locked = threading.Event()

        def run() -> None:
            with self._engine.connect() as locker, self._engine.connect() as watcher:
                locker.execute(text("BEGIN"))
                locker.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                own = locker.execute(text("SELECT pg_backend_pid()")).scalar()
                locked.set()
                deadline = time.monotonic() + 30
                while not self.killed and time.monotonic() < deadline:
                    waiting = watcher.execute(text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> :own"), {"own": own}
                    ).scalars().all()
                    for pid in waiting:
                        watcher.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                        self.killed.append(pid)
                    time.sleep(0.02)
                locker.execute(text("ROLLBACK"))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)
        locked.wait(timeout=30)

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=40)
        self._engine.dispose()
