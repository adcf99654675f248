"""Durations as written in config.yaml."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.durations import DurationError, format_duration, parse_duration

VALID = [
    ("seconds", "30s", timedelta(seconds=30)),
    ("minutes", "5m", timedelta(minutes=5)),
    ("hours", "2h", timedelta(hours=2)),
    ("days", "1d", timedelta(days=1)),
    ("combined", "1h30m", timedelta(hours=1, minutes=30)),
    ("every unit", "1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("surrounding spaces", " 10m ", timedelta(minutes=10)),
    ("more than one unit's worth", "90m", timedelta(minutes=90)),
    ("the longest", "36500d", timedelta(days=36500)),
]

INVALID = [
    ("words", "five minutes", "expected a duration like 30s, 5m, 2h or 1d"),
    ("bare number", "300", "expected a duration like 30s, 5m, 2h or 1d"),
    ("empty", "", "expected a duration like 30s, 5m, 2h or 1d"),
    ("units out of order", "30m1h", "expected a duration like 30s, 5m, 2h or 1d"),
    ("unknown unit", "2w", "expected a duration like 30s, 5m, 2h or 1d"),
    ("space inside", "1h 30m", "expected a duration like 30s, 5m, 2h or 1d"),
    ("negative", "-5m", "expected a duration like 30s, 5m, 2h or 1d"),
    ("zero", "0s", "a duration must be longer than zero"),
    ("past the longest", "36500d1s", "a duration must be at most 36500d (about 100 years)"),
    ("beyond a datetime", "99999999d", "a duration must be at most 36500d (about 100 years)"),
    ("beyond a timedelta", "999999999999d", "a duration must be at most 36500d (about 100 years)"),
    ("beyond int()", "9" * 5000 + "s", "a duration must be at most 36500d (about 100 years)"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_parse_duration_refuses(text: str, message: str) -> None:
    with pytest.raises(DurationError) as raised:
        parse_duration(text)
    assert str(raised.value) == message


@pytest.mark.parametrize("text", ["45s", "5m", "1h30m", "2d", "1d2h3m4s"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
