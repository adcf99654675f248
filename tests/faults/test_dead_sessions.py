"""``kill -9`` of an instance in the middle of a database transaction: the next
instance delivers every alert exactly once, and never waits for ever on a lock of the
dead one's session.

A real ``wirewatch run`` (the victim) is stopped at one exact point by a gate
(tests/faults/sessions.py): a trigger whose first row waits for an advisory lock the
test holds. The points are the three where an instance holds what the others need:

- ``claim``: its delivery claim has taken the alerts (row locks) and is not committed;
- ``admission``: it holds the (channel, rule) admission lock (flood control) and is
  marking an alert admitted;
- ``story``: it holds the story assignment lock and has just recorded a story's first
  alert (the poll's items, hits and deliveries uncommitted).

The victim is killed there, and dies one of three ways:

- ``killed``: on this machine, its connections closed; the gate then opens, and the
  session, its statement done, finds its client gone (the common case);
- ``killed waiting``: the same, while its session still waits at the gate (shut for
  the rest of the test), as for a lock some other transaction holds: the server
  finds out only if it looks;
- ``vanished``: through a forwarder that never tells the server the client is gone,
  as when a machine is powered off or cut off; the gate then opens, and the session
  sits idle in its open transaction.

Until the server ends it, the session keeps the victim's locks. A restarted
instance (a new process on the same host, as systemd would start) must deliver the
three alerts, each once: the victim sent nothing, as it stopped before any send.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url

from monitor.store import SENT, Store
from tests.dbs import fresh_postgres_url  # noqa: F401  (fixture)
from tests.faults.instances import ITEMS, feed_body, sent_items, start
from tests.faults.sessions import Gate, Rows, Vanishing, wait_until
from tests.support import FeedServer, SlackStandIn

POINTS = {
    "claim": Rows("deliveries", "UPDATE", "NEW.status = 'sending' AND OLD.status <> 'sending'"),
    "admission": Rows("deliveries", "UPDATE",
                      "OLD.admitted_at IS NULL AND NEW.admitted_at IS NOT NULL"),
    "story": Rows("story_alerts", "INSERT"),
}


def check_stopped_at(point: str, gate: Gate, store: Store, pid: int) -> None:
    """The victim's transaction is where the test means it to be."""
    if point == "claim":
        # Claimed in its open transaction: the rows are locked, and others still
        # read them as pending.
        assert [d["status"] for d in store.deliveries()] == ["pending"] * len(ITEMS)
        assert gate.sql("SELECT id FROM deliveries FOR UPDATE SKIP LOCKED") == []
    elif point == "admission":
        assert gate.holds_admission_lock(pid)
        assert [d["status"] for d in store.deliveries()] == ["sending"] * len(ITEMS)
    else:
        assert gate.holds_story_lock(pid)
        assert store.deliveries() == []  # the poll's transaction is not committed


@pytest.mark.parametrize("death", ["killed", "killed waiting", "vanished"])
@pytest.mark.parametrize("point", list(POINTS))
def test_an_instance_killed_inside_a_transaction_holds_up_no_alert_for_long(
    point: str, death: str, tmp_path: Path, fresh_postgres_url: str,  # noqa: F811
    feed_server: FeedServer, slack_standin: SlackStandIn,
) -> None:
    url = fresh_postgres_url
    with contextlib.ExitStack() as cleanup:
        # Undone in reverse order, each whatever the others do: a survivor that hangs
        # must not leave the gate shut or the dead session's forwarder open.
        store = Store.open(url)  # the schema, for the gate's trigger
        cleanup.callback(store.close)
        gate = Gate(url, POINTS[point])
        cleanup.callback(gate.close)
        parsed = make_url(url)
        forwarder = Vanishing((parsed.host or "127.0.0.1", parsed.port or 5432))
        cleanup.callback(forwarder.close)
        # The vanished victim's idle timeout is cut from wirewatch's 5 minutes (checked
        # below) to 15 s through the URL, which the settings let win, so that the test
        # waits seconds for the server to end the session, not minutes.
        through = parsed.set(host="127.0.0.1", port=forwarder.port).update_query_dict(
            {"options": "-c idle_in_transaction_session_timeout=15s"}).render_as_string(
            hide_password=False)
        feed_server.set_route("/wire.xml", feed_body())
        feed = feed_server.url("/wire.xml")
        victim = start(tmp_path / "victim", database=through if death == "vanished" else url,
                       feed=feed, slack=slack_standin)
        cleanup.callback(victim.close)

        pid = gate.waiter()
        check_stopped_at(point, gate, store, pid)

        victim.close()  # SIGKILL, and reaped: the restart below finds its pid gone
        if death == "killed":
            gate.open()
        elif death == "vanished":
            # The statement at the gate ends; the session then waits, transaction open,
            # for a client that will never speak again.
            gate.open()
            wait_until(lambda: gate.backend(pid) == "idle in transaction", timeout=30,
                       what="the dead session to sit idle in its transaction")

        survivor = start(tmp_path / "survivor", database=url, feed=feed, slack=slack_standin)
        cleanup.callback(survivor.close)
        try:
            slack_standin.wait_for_messages(len(ITEMS), timeout=60)
            wait_until(lambda: {d["status"] for d in store.deliveries()} == {SENT},
                       timeout=30, what="every alert marked sent")
        except (AssertionError, TimeoutError) as exc:
            raise AssertionError(
                f"{exc}; dead session {pid}: {gate.backend(pid)}; "
                f"deliveries {[d['status'] for d in store.deliveries()]}; "
                f"survivor log:\n{survivor.stderr[-3000:]}") from None
        assert sent_items(slack_standin) == Counter(ITEMS)
        # The dead session itself was ended, not merely bypassed (its locks go a
        # moment before its entry in pg_stat_activity).
        wait_until(lambda: gate.backend(pid) is None, timeout=10,
                   what=f"the dead session to end ({gate.backend(pid)})")
        assert survivor.stop() == 0, survivor.stderr


def test_a_session_setting_chosen_for_the_database_or_in_the_url_wins(
    fresh_postgres_url: str,  # noqa: F811
) -> None:
    def setting(url: str, name: str) -> str:
        store = Store.open(url)
        try:
            with store.engine.connect() as connection:
                return str(connection.exec_driver_sql(f"SHOW {name}").scalar())
        finally:
            store.close()

    url = fresh_postgres_url
    assert setting(url, "idle_in_transaction_session_timeout") == "5min"
    assert setting(url, "client_connection_check_interval") == "5s"
    in_url = make_url(url).update_query_dict(
        {"options": "-c idle_in_transaction_session_timeout=7s"}).render_as_string(
        hide_password=False)
    assert setting(in_url, "idle_in_transaction_session_timeout") == "7s"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            name = connection.exec_driver_sql("SELECT current_database()").scalar()
            connection.exec_driver_sql(
                f'ALTER DATABASE "{name}" SET client_connection_check_interval = 0')
    finally:
        admin.dispose()
    assert setting(url, "client_connection_check_interval") == "0"
    assert setting(url, "idle_in_transaction_session_timeout") == "5min"
