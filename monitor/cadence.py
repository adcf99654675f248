"""When a feed is polled next: interval, jitter, backoff and server hints.

Pure functions of their inputs (the random source is passed in), so the
policy is tested without a clock or a network.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.durations import doubled

DEFAULT_MAX_BACKOFF = timedelta(hours=6)
# Up to this share of the interval is added at random, so feeds added together
# drift apart instead of polling in lock-step.
JITTER_SHARE = 0.1
MAX_JITTER = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Cadence:
    interval: timedelta
    min_interval: timedelta
    max_interval: timedelta
    max_backoff: timedelta = DEFAULT_MAX_BACKOFF

    def clamp(self, value: timedelta) -> timedelta:
        return max(self.min_interval, min(self.max_interval, value))


def next_poll_after_success(
    now: datetime,
    cadence: Cadence,
    *,
    server_hint: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """``server_hint`` is the feed's <ttl> or Cache-Control max-age, if any.

    A hint can lengthen the interval (be polite to a server that asks for it)
    but never beyond max_interval; it never shortens below min_interval.
    """
    interval = cadence.interval
    if server_hint is not None and server_hint > interval:
        interval = server_hint
    interval = cadence.clamp(interval)
    return now + interval + _jitter(interval, rng)


def next_poll_after_failure(
    now: datetime,
    cadence: Cadence,
    *,
    failures: int,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """Exponential backoff from the interval, capped; Retry-After wins exactly.

    ``failures`` counts this failure too (1 after the first one).
    """
    if retry_after is not None:
        # Obeyed exactly: no jitter, no clamping to our own bounds.
        return now + retry_after
    base = cadence.clamp(cadence.interval)
    cap = max(cadence.max_backoff, base)
    delay = doubled(base, failures - 1, most=cap)
    return now + delay + _jitter(delay, rng)


def _jitter(interval: timedelta, rng: random.Random | None) -> timedelta:
    fraction: float = (rng or random).random()
    span = min(interval * JITTER_SHARE, MAX_JITTER)
    return span * fraction
