"""Recording that a message went out, when the database fails right after the send.

The send cannot be undone, so the mark that says "sent" is worth waiting for: a
connection killed by a failover or a restarting server comes back within seconds
(the pool's pre-ping opens a fresh one). Given up, the row stays claimed, and is sent
again once its claim expires (docs/delivery.md, "Doubled at most by what was in
flight").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("wirewatch.delivery")

FIRST_WAIT = 0.1
MAX_WAIT = 5.0


async def record_sent(what: str, write: Callable[[], None], *, lease: timedelta) -> None:
    """Run ``write`` (marking ``what`` sent), retrying a database failure for up to a
    quarter of ``lease``: well inside the claim, so no other instance takes the row and
    sends it again meanwhile. Then the error is raised, after one line saying so."""
    loop = asyncio.get_running_loop()
    until = loop.time() + lease.total_seconds() / 4
    wait = FIRST_WAIT
    while True:
        try:
            write()
            return
        except SQLAlchemyError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if loop.time() + wait > until:
                log.error("%s was sent but the database would not record it (%s): it is "
                          "sent again once its claim expires; check the database", what,
                          detail)
                raise
            log.warning("%s was sent; recording it failed, retrying in %.1fs: %s", what,
                        wait, detail)
        await asyncio.sleep(wait)
        wait = min(wait * 2, MAX_WAIT)
