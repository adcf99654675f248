"""The ``wirewatch`` command's entry point: SIGHUP is handled before anything heavy loads.

Loading the CLI imports the whole pipeline (pydantic, SQLAlchemy, httpx, feedparser,
...): about a second. ``systemctl reload`` (SIGHUP) sent meanwhile, as a deploy that
starts then reloads the daemon does, would kill it by the signal's default action.
So for ``run`` without ``--once`` the signal is noted from the first line on;
``cmd_run`` takes the same list over and acts on it once the reloader is up.
``run --once`` keeps the default: there SIGHUP means the terminal closed.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

#: SIGHUPs received before the reloader could take them: appended by the handler.
EARLY_HUPS: list[int] = []


def note_hup(signum: int, _frame: FrameType | None) -> None:
    """The SIGHUP handler until the reloader takes over: the signal is kept for it."""
    EARLY_HUPS.append(signum)


def _runs_the_daemon(argv: list[str]) -> bool:
    # A rough look, before argparse is loaded: a wrong guess only keeps a command
    # other than the daemon from dying of SIGHUP.
    return "run" in argv and "--once" not in argv


def main() -> int:
    if _runs_the_daemon(sys.argv[1:]):
        signal.signal(signal.SIGHUP, note_hup)
    from monitor.cli import main as cli_main

    return cli_main()
