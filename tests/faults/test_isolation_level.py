"""wirewatch's locking relies on READ COMMITTED: each statement sees what was
committed before it began. A database whose default isolation is stricter (``ALTER
DATABASE ... SET default_transaction_isolation``, as some operators set it) must not
change what it does.

Flood control shows it: the admission counts what was admitted before it took its
lock. Under REPEATABLE READ the count came from a snapshot taken before the wait for
the lock, so two instances both admitted the alert that filled a burst; under
SERIALIZABLE the second one was aborted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from monitor.flood import Burst
from monitor.holds import ChannelPolicy, DeliveryPolicy, Hold
from monitor.store import Store
from monitor.store.outbox import AdmittedCount
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.faults.outbox import store_hits
from tests.faults.sessions import wait_until

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def count(store: Store, statement: str) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(text(statement)).scalar_one())


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_on_a_stricter_default_isolation_two_instances_admit_one_alert_of_a_burst_of_one(
    isolation: str, fresh_postgres_url: str,  # noqa: F811
) -> None:
    """tests/scale/test_burst_across_instances.py, on such a database."""
    admin = create_engine(fresh_postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.execute(text(
            f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = '{isolation}'"))
    admin.dispose()
    policy = DeliveryPolicy(channels={"desk": ChannelPolicy(
        burst=Burst(max=1, window=timedelta(minutes=10)))})

    def decide(admitted: AdmittedCount) -> Hold | None:
        return policy.hold_for(notifier="desk", rule="quake", severity="normal", now=T0,
                               admitted_since=lambda _n, _r, since: admitted(since))

    first, second = Store.open(fresh_postgres_url), Store.open(fresh_postgres_url)
    try:
        store_hits(first, rule="quake", notifiers=["desk"], keys=["q1", "q2"], now=T0)
        rows = [d["id"] for d in first.deliveries()]
        a_counted, b_started = threading.Event(), threading.Event()
        holds: dict[str, Hold | None] = {}
        errors: list[BaseException] = []

        def dawdling(admitted: AdmittedCount) -> Hold | None:
            hold = decide(admitted)
            a_counted.set()
            # B has begun its transaction and waits for the lock: its snapshot, under
            # REPEATABLE READ, is older than A's admission.
            wait_until(b_started.is_set, timeout=30, what="instance B")
            wait_until(lambda: count(first, "SELECT count(*) FROM pg_locks WHERE NOT granted"
                                            " AND locktype = 'advisory'") == 1,
                       timeout=30, what="instance B to wait for the admission lock")
            return hold

        def instance(label: str, store: Store, row: int,
                     hold: Callable[[AdmittedCount], Hold | None]) -> None:
            try:
                holds[label] = store.admit_unless_held(row, notifier="desk", rule="quake",
                                                       now=T0, hold=hold)
            except BaseException as exc:  # surfaced below, not lost in the thread
                errors.append(exc)

        a = threading.Thread(target=instance, args=("a", first, rows[0], dawdling))
        a.start()
        assert a_counted.wait(60), "instance A never counted"
        b = threading.Thread(target=instance, args=("b", second, rows[1], decide))
        b.start()
        b_started.set()
        a.join(60)
        b.join(60)
        assert not errors, errors
        assert holds["a"] is None, "the first alert of the burst goes out alone"
        assert holds["b"] is not None and holds["b"].batch.startswith("burst:"), (
            "the second alert counted the first one's place as free")
        assert count(first, "SELECT count(*) FROM deliveries WHERE admitted_at IS NOT NULL") == 1
    finally:
        first.close()
        second.close()
