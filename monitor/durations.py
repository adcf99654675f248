"""Durations as operators write them in config.yaml: ``30s``, ``5m``, ``2h``, ``1d``.

Units may be combined from the largest to the smallest (``1h30m``, ``1d12h``). A bare
number is refused on purpose: ``interval: 300`` could mean seconds or minutes, and a
config value whose unit a reader has to guess is a bug waiting to happen.

Nor is a duration longer than :data:`MAX_DURATION` accepted: added to or taken from the
clock, ``99999999d`` leaves the calendar Python and the databases can hold, and every
poll (or ``--since``) would then fail on an OverflowError instead of the value being
refused once, where it is written.
"""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_HINT = "expected a duration like 30s, 5m, 2h or 1d"

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))

#: About a century: far beyond any interval, window or retention anyone means, and far
#: inside the years a datetime can reach from today in either direction.
MAX_DURATION = timedelta(days=36500)


class DurationError(ValueError):
    """A duration could not be read; the message says what is expected (never the value)."""


def parse_duration(text: str) -> timedelta:
    """Read ``30s``/``5m``/``2h``/``1d`` (or a combination such as ``1h30m``) as a timedelta.

    Raises DurationError for anything else, including zero: a zero interval or timeout
    is never what an operator meant.
    """
    written = text.strip()
    match = _DURATION.fullmatch(written)
    if not written or match is None:
        raise DurationError(DURATION_HINT)
    too_long = DurationError(f"a duration must be at most {format_duration(MAX_DURATION)} "
                             "(about 100 years)")
    # Thousands of digits would stop int() itself; anything this long is refused anyway.
    if any(len(group) > 12 for group in match.groups() if group):
        raise too_long
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise DurationError("a duration must be longer than zero")
    if total > MAX_DURATION.total_seconds():
        raise too_long
    return timedelta(seconds=total)


def format_duration(duration: timedelta) -> str:
    """Write a timedelta back in the config notation (``timedelta(seconds=5400)`` → ``1h30m``)."""
    remaining = int(duration.total_seconds())
    if remaining <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def doubled(first: timedelta, times: int, *, most: timedelta) -> timedelta:
    """``first`` doubled ``times`` times, but never more than ``most``: a backoff's wait.

    Worked in float seconds with the exponent bounded, and capped before it becomes a
    timedelta: ``timedelta * 2**47`` overflows, and an outage of ten hours retried up to
    every 15 minutes is 47 attempts.
    """
    seconds = first.total_seconds() * 2.0 ** min(max(0, times), 64)
    return timedelta(seconds=min(seconds, most.total_seconds()))
