"""Flood control counts exactly across instances: the alert that fills a rule's burst
goes out once, however many instances on one database decide about it at once.

Counting a rule's admissions and admitting a row are one locked step
(``Store.admit_unless_held``). Here instance A counts and then dawdles before it
admits; instance B decides meanwhile. Counted and admitted apart, B would count
the same free place A is about to take, and both alerts would go out alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from monitor.flood import Burst
from monitor.holds import ChannelPolicy, DeliveryPolicy, Hold
from monitor.store import Store
from monitor.store.outbox import AdmittedCount
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.faults.outbox import store_hits

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
POLICY = DeliveryPolicy(channels={"desk": ChannelPolicy(burst=Burst(max=1, window=WINDOW))})
# How long A waits, between counting and admitting, for B to count too. With the lock
# B cannot count before A commits, so A waits this long in vain.
DAWDLE = 0.5


def decide(admitted: AdmittedCount) -> Hold | None:
    return POLICY.hold_for(notifier="desk", rule="quake", severity="normal", now=T0,
                           admitted_since=lambda _n, _r, since: admitted(since))


def admitted_alone(store: Store) -> int:
    """How many of the rule's alerts the store counts as sent alone in the window."""
    counted: list[int] = []

    def count_only(admitted: AdmittedCount) -> str:
        counted.append(admitted(T0 - WINDOW)[0])
        return "read only"  # not None: the row named is not admitted

    any_row = store.deliveries()[0]["id"]
    store.admit_unless_held(any_row, notifier="desk", rule="quake", now=T0, hold=count_only)
    return counted[0]


def test_two_instances_deciding_at_once_admit_one_alert_of_a_one_alert_burst(
    database_url: str,  # noqa: F811
) -> None:
    first, second = Store.open(database_url), Store.open(database_url)
    try:
        store_hits(first, rule="quake", notifiers=["desk"], keys=["q1", "q2"], now=T0)
        rows = [d["id"] for d in first.deliveries()]
        a_counted, b_counted = threading.Event(), threading.Event()
        holds: dict[str, Hold | None] = {}
        errors: list[BaseException] = []

        def dawdling(admitted: AdmittedCount) -> Hold | None:
            hold = decide(admitted)
            a_counted.set()
            b_counted.wait(DAWDLE)
            return hold

        def counting(admitted: AdmittedCount) -> Hold | None:
            hold = decide(admitted)
            b_counted.set()
            return hold

        def instance(name: str, store: Store, row: int,
                     hold: Callable[[AdmittedCount], Hold | None]) -> None:
            try:
                holds[name] = store.admit_unless_held(row, notifier="desk", rule="quake",
                                                      now=T0, hold=hold)
            except BaseException as exc:  # surfaced below, not lost in the thread
                errors.append(exc)

        a = threading.Thread(target=instance, args=("a", first, rows[0], dawdling))
        a.start()
        assert a_counted.wait(60), "instance A never counted"
        # A has counted and not yet admitted its row: B decides now.
        b = threading.Thread(target=instance, args=("b", second, rows[1], counting))
        b.start()
        a.join(60)
        b.join(60)
        assert not errors, errors
        assert holds["a"] is None, "the first alert of the burst goes out alone"
        assert holds["b"] is not None and holds["b"].batch.startswith("burst:"), (
            "the second alert counted the first one's place as free"
        )
        assert admitted_alone(first) == 1
    finally:
        first.close()
        second.close()
