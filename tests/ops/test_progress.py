"""The progress bar draws on a terminal only, and only for long operations."""

from __future__ import annotations

import io

import pytest

from monitor.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "total", "draws"),
    [
        pytest.param(Terminal(), 50, True, id="terminal, many steps"),
        pytest.param(Terminal(), 5, False, id="terminal, few steps"),
        pytest.param(io.StringIO(), 50, False, id="pipe or file"),
        pytest.param(Terminal(), None, True, id="terminal, unknown total"),
    ],
)
def test_progress_bar_draws_only_where_it_helps(stream: io.StringIO, total: int | None,
                                               draws: bool) -> None:
    with progress_bar(stream, total=total, description="polling feeds") as advance:
        for _ in range(total or 30):
            advance(1)
    assert ("polling feeds" in stream.getvalue()) is draws
    if not draws:
        assert stream.getvalue() == ""
