"""``python -m bench crash [TRIALS] [SEED]``: kill -9 a delivering daemon, restart, count.

Each trial (tests/faults/crash.py) starts ``python -m monitor run`` on a fresh SQLite
database with 4 Slack channels x 6 alerts on the loopback stand-in, kills it with SIGKILL
at a random moment after the first message, restarts with ``run --once`` and counts
the messages per (channel, alert). Default 20 trials. The test suite runs 3
(tests/faults/test_crash.py).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from tests.faults.crash import CHANNELS, ITEMS, run_trial
from tests.support import FeedServer, SlackStandIn


def main(argv: list[str]) -> int:
    trials = int(argv[0]) if argv else 20
    seed = int(argv[1]) if len(argv) > 1 else int(time.time())
    rng = random.Random(seed)
    print(f"kill -9 during delivery: {trials} trials, seed {seed}, "
          f"{CHANNELS} channels x {ITEMS} alerts (2 shared cores: timings vary)")
    print(f"{'trial':>5} {'kill_s':>7} {'sent':>5} {'claimed':>8} {'lost':>5} {'dups':>5}")
    results = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wirewatch-crash-") as tmp, \
            FeedServer() as feeds, SlackStandIn() as slack:
        for n in range(trials):
            r = run_trial(Path(tmp) / f"trial-{n}", trial=n, rng=rng, feeds=feeds, slack=slack)
            results.append(r)
            print(f"{n:>5} {r.kill_after:>7.2f} {r.sent_before_kill:>5} "
                  f"{r.claimed_at_kill:>8} {r.lost:>5} {r.duplicates:>5}")
    lost = sum(r.lost for r in results)
    duplicates = sum(r.duplicates for r in results)
    over_bound = sum(1 for r in results if r.duplicates > r.claimed_at_kill)
    print(f"total lost {lost}, total duplicates {duplicates}, "
          f"trials over the in-flight bound {over_bound}")
    print(json.dumps({
        "trials": trials, "seed": seed, "alerts_per_trial": CHANNELS * ITEMS,
        "lost_total": lost, "duplicates_total": duplicates,
        "trials_over_in_flight_bound": over_bound,
        "claimed_at_kill_total": sum(r.claimed_at_kill for r in results),
        "wall_seconds": round(time.monotonic() - started, 1),
    }))
    return 1 if lost or over_bound else 0
