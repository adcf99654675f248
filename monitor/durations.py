"""Durations as operators write them in config.yaml: ``30s``, ``5m``, ``2h``, ``1d``.

Units may be combined from the largest to the smallest (``1h30m``, ``1d12h``). A bare
number is refused on purpose: ``interval: 300`` could mean seconds or minutes, and a
config value whose unit a reader has to guess is a bug waiting to happen.
"""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_HINT = "expected a duration like 30s, 5m, 2h or 1d"

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


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
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise DurationError("a duration must be longer than zero")
    return duration


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
