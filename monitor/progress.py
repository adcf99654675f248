"""A progress bar for long operations, on a terminal only.

Scripts and log files get nothing (a bar's carriage returns would only be
noise there); an operator at a terminal sees how far a first poll of many
feeds, or a backtest over months of items, has come.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Advance = Callable[[int], None]

#: Below this many steps an operation is quick; a bar would only flicker.
MIN_STEPS = 20


def _nothing(_steps: int = 1) -> None:
    pass


@contextmanager
def progress_bar(stream: TextIO, *, total: int | None, description: str,
                 min_steps: int = MIN_STEPS) -> Iterator[Advance]:
    """Yield ``advance(steps=1)``; draws a bar on ``stream`` when it is a terminal.

    ``total`` None means "unknown" (the bar then only counts).
    """
    is_terminal = getattr(stream, "isatty", lambda: False)()
    if not is_terminal or (total is not None and total < min_steps):
        yield _nothing
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(steps: int = 1) -> None:
            bar.advance(task, steps)

        yield advance
