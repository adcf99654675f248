"""Claims of a process on this host that has died are released at once, not after
their lease, even while the dead process waits for its parent to reap it.

``kill -9`` leaves a zombie until the parent (a shell, a supervisor) wakes up; signal
0 still reaches a zombie. Here the test process itself is that parent and does not
reap its killed child until the end, so the claimer stays a zombie throughout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.delivery import LEASE, Deliverer
from monitor.pacing import Pacer
from monitor.store import SENT, Store
from notifiers import SlackNotifier
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.faults.outbox import store_hits
from tests.support import SlackStandIn

HOST = "newsdesk-1"


def zombie() -> subprocess.Popen[bytes]:
    """A child process killed and left unreaped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.kill()
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 10
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the killed child never became a zombie"
        time.sleep(0.01)
    return child


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_killed_unreaped_claimer_has_its_alerts_sent_without_waiting_for_the_lease(
    database_url: str, slack_standin: SlackStandIn  # noqa: F811
) -> None:
    store = Store.open(database_url)
    child = zombie()
    try:
        now = datetime.now(UTC)
        store_hits(store, rule="quake", notifiers=["desk"], keys=["q1"], now=now)
        claimed = store.claim_deliveries(now=now, lease=LEASE, claimer=f"{HOST}:{child.pid}")
        assert len(claimed) == 1
        slack = SlackNotifier(name="desk", channel="#desk", token=slack_standin.token,
                              base_url=slack_standin.base_url)
        deliverer = Deliverer(store=store, notifiers={"desk": slack},
                              instance_id=f"{HOST}:{os.getpid()}", pacer=Pacer(scale=0.0))
        asyncio.run(deliverer.deliver_due())
        assert [d["status"] for d in store.deliveries()] == [SENT]
        assert len(slack_standin.messages) == 1
    finally:
        child.wait()
        store.close()
