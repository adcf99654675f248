"""The delivery backoff over an outage of hours: it stays at its cap, and never fails.

An alert retried through a long outage counts its attempts up: at the 15-minute cap,
ten hours is about 47 of them, and ``2 s * 2**46`` no longer fits in a timedelta. The
wait must stay at the cap however many attempts came before, or handling the next
failure raises instead of scheduling the retry.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from monitor.delivery import MAX_RETRY, Backoff


@pytest.mark.parametrize("attempts", [1, 2, 10, 46, 47, 48, 100, 10_000])
def test_the_wait_stays_within_its_cap_however_many_attempts_came_before(attempts: int) -> None:
    rng = random.Random(attempts)
    wait = Backoff().delay(attempts, rng=rng)
    expected_base = min(timedelta(seconds=2) * 2 ** min(attempts - 1, 20), MAX_RETRY)
    assert expected_base / 2 <= wait <= expected_base


def test_the_wait_doubles_from_the_first_until_the_cap() -> None:
    backoff = Backoff(first=timedelta(seconds=2), maximum=timedelta(seconds=60))
    waits = [backoff.delay(n, rng=random.Random(0)).total_seconds() for n in range(1, 8)]
    # Jitter keeps each wait in the upper half of its base: 2, 4, 8, ... 60, 60.
    bases = [2, 4, 8, 16, 32, 60, 60]
    assert all(base / 2 <= got <= base for got, base in zip(waits, bases, strict=True))
