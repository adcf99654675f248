"""``kill -9`` of a running daemon during delivery: after a restart no alert is lost, and
duplicates never exceed what was in flight at the kill.

Three trials here keep the suite short; ``python -m bench crash`` runs twenty.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.faults.crash import CHANNELS, run_trial
from tests.support import FeedServer, SlackStandIn

TRIALS = 3


@pytest.mark.timeout(300)
def test_kill_9_during_delivery_loses_nothing_and_duplicates_at_most_in_flight(
    tmp_path: Path, feed_server: FeedServer, slack_standin: SlackStandIn
) -> None:
    rng = random.Random(20260302)
    results = [
        run_trial(tmp_path / f"trial-{n}", trial=n, rng=rng, feeds=feed_server,
                  slack=slack_standin)
        for n in range(TRIALS)
    ]
    total = sum(r.duplicates for r in results)
    print(f"\nkill -9 trials: {TRIALS}, total duplicates measured: {total}")
    for n, r in enumerate(results):
        print(f"  trial {n}: killed {r.kill_after:.2f}s into delivery, "
              f"{r.sent_before_kill} sent before, {r.claimed_at_kill} claimed at the kill, "
              f"lost {r.lost}, duplicates {r.duplicates}")
        assert r.lost == 0, r
        assert r.duplicates <= r.claimed_at_kill, r
        # Each channel sends one message at a time: at most one per channel can be
        # on the wire, unacknowledged, when the process dies.
        assert r.duplicates <= CHANNELS, r
        assert r.sent_before_kill > 0, r
