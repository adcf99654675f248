"""Claims of a process on this host that has died are released at once, not after
their lease, even while the dead process waits for its parent to reap it.

``kill -9`` leaves a zombie until the parent (a shell, a supervisor) wakes up; signal
0 still reaches a zombie. Here the test process itself is that parent and does not
reap its killed child until the end, so the claimer stays a zombie throughout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
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

# Claims are only given back early for a claimer of this host, found gone here.
HOST = socket.gethostname()


def zombie() -> subprocess.Popen[bytes]:
    """A child process killed and left unreaped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    child.kill()
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 60
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


IN_A_CONTAINER = """
import asyncio, os, socket, sys
from monitor.delivery import Deliverer
from monitor.pacing import Pacer
from monitor.store import Store
from notifiers import SlackNotifier
database, token, base_url = sys.argv[1:]
store = Store.open(database)
slack = SlackNotifier(name="desk", channel="#desk", token=token, base_url=base_url)
deliverer = Deliverer(store=store, notifiers={"desk": slack},
                      instance_id=f"{socket.gethostname()}:{os.getpid()}", pacer=Pacer(scale=0.0))
asyncio.run(deliverer.deliver_due())
store.close()
print("pid", os.getpid())
"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs unshare --pid (root)")
def test_in_a_container_a_live_claimer_of_the_same_hostname_keeps_its_claims(
    database_url: str, slack_standin: SlackStandIn  # noqa: F811
) -> None:
    # Containers with host networking share the hostname, each with its own pids: a
    # starting instance in one found the other's claimer pid absent from its own pid
    # namespace, took it for dead, and sent the alert it was sending a second time.
    store = Store.open(database_url)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        now = datetime.now(UTC)
        store_hits(store, rule="quake", notifiers=["desk"], keys=["q1"], now=now)
        assert len(store.claim_deliveries(now=now, lease=LEASE,
                                          claimer=f"{HOST}:{other.pid}")) == 1
        started = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c",
             IN_A_CONTAINER, database_url, str(slack_standin.token), slack_standin.base_url],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert started.returncode == 0, started.stderr
        assert started.stdout.split() == ["pid", "1"]  # it ran in a pid namespace of its own
        assert [d["status"] for d in store.deliveries()] == ["sending"]
        assert slack_standin.messages == []
    finally:
        other.kill()
        other.wait()
        store.close()
