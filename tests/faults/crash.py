"""One crash trial: ``kill -9`` a running daemon in the middle of delivery, restart it,
and count what reached Slack.

The daemon is a real ``python -m monitor run`` process with its own config: one feed
on the local feed server, one rule, ``CHANNELS`` Slack notifiers on the stand-in (each
paced at one message per second, so delivery takes a few seconds). The trial waits for
the first message, sleeps a random fraction of the delivery time, sends SIGKILL, reads
how many rows were claimed (in flight) at that moment, then runs ``run --once`` on the
same database and counts the messages per (channel, alert).

Used by tests/faults/test_crash.py (a few trials) and ``python -m bench crash`` (20).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from monitor.store import SENDING, Store
from tests.support import FeedServer, SlackStandIn

REPO = Path(__file__).resolve().parents[2]
ITEMS = 6
CHANNELS = 4

CONFIG = """\
database: "sqlite:///{db}"
feeds:
  - name: wire
    url: {feed}
notifiers:
{notifiers}
rules:
  - name: quake
    query: earthquake
"""

NOTIFIER = """\
  desk{n}:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#desk{n}"
    base_url: {slack}
"""


@dataclass(frozen=True, slots=True)
class TrialResult:
    kill_after: float  # seconds after the first message arrived
    sent_before_kill: int  # messages Slack had when the daemon died
    claimed_at_kill: int  # rows claimed (SENDING) at the kill
    lost: int  # (channel, alert) pairs never delivered
    duplicates: int  # extra copies beyond the first


def feed_body(trial: int) -> bytes:
    items = "".join(
        f"<item><title>Earthquake report {trial}-{i}</title>"
        f"<link>https://news.example/quake/{trial}/{i}</link><guid>q-{trial}-{i}</guid>"
        f"<description>An earthquake was felt in region {i}.</description></item>"
        for i in range(ITEMS)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        f"<link>https://news.example/</link><description>d</description>{items}"
        "</channel></rss>"
    ).encode()


def run_trial(
    workdir: Path, *, trial: int, rng: random.Random, feeds: FeedServer, slack: SlackStandIn
) -> TrialResult:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "wirewatch.db"
    feeds.set_route(f"/wire-{trial}.xml", feed_body(trial))
    notifiers = "".join(NOTIFIER.format(n=n, slack=slack.base_url) for n in range(CHANNELS))
    config = workdir / "config.yaml"
    config.write_text(CONFIG.format(db=db, feed=feeds.url(f"/wire-{trial}.xml"),
                                    notifiers=notifiers))
    env = {**os.environ, "SLACK_BOT_TOKEN": slack.token or ""}
    command = [sys.executable, "-m", "monitor", "--config", str(config), "run"]
    slack.reset()
    expected = {(f"#desk{n}", f"q-{trial}-{i}") for n in range(CHANNELS) for i in range(ITEMS)}

    log = (workdir / "daemon.log").open("wb")
    daemon = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        slack.wait_for_messages(1, timeout=60)
        # Delivery takes about ITEMS seconds (one message per second per channel).
        kill_after = rng.uniform(0.0, ITEMS - 1.0)
        time.sleep(kill_after)
        daemon.send_signal(signal.SIGKILL)
    finally:
        daemon.kill()
        daemon.wait()  # reaped, so the restart sees its pid as gone
        log.close()
    sent_before_kill = len(slack.messages)
    store = Store.open(f"sqlite:///{db}")
    try:
        claimed_at_kill = sum(1 for d in store.deliveries() if d["status"] == SENDING)
    finally:
        store.close()

    with (workdir / "restart.log").open("wb") as restart_log:
        subprocess.run([*command, "--once"], cwd=REPO, env=env, check=True, timeout=120,
                       stdout=restart_log, stderr=restart_log)

    received = Counter(
        (call.body["channel"], _guid_of(call.body["text"])) for call in slack.messages
    )
    lost = len(expected - set(received))
    duplicates = sum(count - 1 for count in received.values())
    return TrialResult(kill_after=kill_after, sent_before_kill=sent_before_kill,
                       claimed_at_kill=claimed_at_kill, lost=lost, duplicates=duplicates)


def _guid_of(text: str) -> str:
    # "[quake] Earthquake report 3-5 (wire) <https://news.example/quake/3/5>"
    trial, _, item = text.split("Earthquake report ")[1].split(" ")[0].partition("-")
    return f"q-{trial}-{item}"
