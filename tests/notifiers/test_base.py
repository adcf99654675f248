from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from notifiers.base import format_published, one_line, safe_link, split_marked


@pytest.mark.parametrize(
    ("text", "marks", "expected"),
    [
        pytest.param("abc def", (), [("abc def", False)], id="no-marks"),
        pytest.param("abc def", ((4, 7),), [("abc ", False), ("def", True)], id="one-mark"),
        pytest.param(
            "abc def ghi",
            ((4, 7), (0, 3)),
            [("abc", True), (" ", False), ("def", True), (" ghi", False)],
            id="unsorted-marks",
        ),
        pytest.param("abcdef", ((0, 3), (2, 5)), [("abcde", True), ("f", False)], id="overlap"),
        pytest.param("abc", ((1, 99), (-5, 0)), [("a", False), ("bc", True)], id="clipped"),
        pytest.param(
            "a  word  b",
            ((1, 9),),
            [("a  ", False), ("word", True), ("  b", False)],
            id="whitespace-moved-out",
        ),
        pytest.param("a   b", ((1, 4),), [("a   b", False)], id="mark-only-whitespace"),
        pytest.param("abc", ((2, 1),), [("abc", False)], id="reversed-ignored"),
        pytest.param("", ((0, 3),), [], id="empty-text"),
    ],
)
def test_split_marked(
    text: str, marks: tuple[tuple[int, int], ...], expected: list[tuple[str, bool]]
) -> None:
    assert split_marked(text, marks) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a\r\nBcc: x@y", "a Bcc: x@y", id="crlf"),
        pytest.param("  a\t\tb \u2028 c ", "a b c", id="unicode-whitespace"),
        pytest.param("red\x1b[31m alert\x07", "red[31m alert", id="ansi-and-bell"),
        pytest.param("abc\u202edcba", "abcdcba", id="bidi-override"),
    ],
)
def test_one_line(text: str, expected: str) -> None:
    assert one_line(text) == expected


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        pytest.param("https://a.example/x?y=1", "https://a.example/x?y=1", id="https"),
        pytest.param(" http://a.example/ ", "http://a.example/", id="trimmed"),
        pytest.param("javascript:alert(1)", None, id="javascript"),
        pytest.param("data:text/html,<b>x</b>", None, id="data"),
        pytest.param("/relative/path", None, id="relative"),
        pytest.param("https://a.example/x y", None, id="inner-space"),
        pytest.param("https://a.example/\nx", None, id="newline"),
        pytest.param("https://", None, id="no-host"),
        pytest.param(None, None, id="none"),
    ],
)
def test_safe_link(link: str | None, expected: str | None) -> None:
    assert safe_link(link) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "2024-05-01 12:30 UTC", id="utc"),
        pytest.param(
            datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01 12:30 UTC",
            id="offset-converted",
        ),
        pytest.param(datetime(2024, 5, 1, 12, 30), "2024-05-01 12:30 UTC", id="naive-as-utc"),
        pytest.param(None, "unknown", id="missing"),
    ],
)
def test_format_published(value: datetime | None, expected: str) -> None:
    assert format_published(value) == expected
