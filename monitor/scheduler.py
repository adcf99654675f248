"""When things run: APScheduler 3 ticks that start polling and delivery passes.

No business logic lives here. The store decides which feeds are due; this
module only makes sure a pass starts soon after the previous one finished,
and never two of the same kind at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("wirewatch.scheduler")

Pass = Callable[[], Awaitable[object]]


class Scheduler:
    """Runs named passes every ``tick`` seconds, skipping a tick while one still runs."""

    def __init__(self, *, tick_seconds: float = 1.0) -> None:
        self._tick = tick_seconds
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._running: dict[str, asyncio.Task[object]] = {}
        self.last_tick_at: datetime | None = None

    def every_tick(self, name: str, run: Pass) -> None:
        async def tick() -> None:
            self.last_tick_at = datetime.now(self._scheduler.timezone)
            task = self._running.get(name)
            if task is not None and not task.done():
                return  # the previous pass is still working: skipping is the point
            self._running[name] = asyncio.create_task(self._guarded(name, run), name=name)

        self._scheduler.add_job(
            tick,
            "interval",
            seconds=self._tick,
            id=name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(self._scheduler.timezone),
        )

    def cron(self, name: str, run: Pass, *, trigger: object) -> None:
        self._scheduler.add_job(run, trigger=trigger, id=name, max_instances=1, coalesce=True)

    async def _guarded(self, name: str, run: Pass) -> object:
        try:
            return await run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failing pass is logged and retried next tick; it must never
            # stop the daemon.
            log.exception("pass=%s failed", name)
            return None

    def start(self) -> None:
        self._scheduler.start()

    async def shutdown(self, *, grace_seconds: float = 10.0) -> None:
        """Stop ticking, then let running passes finish within the grace period."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        pending = [t for t in self._running.values() if not t.done()]
        if not pending:
            return
        _, still_running = await asyncio.wait(pending, timeout=grace_seconds)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=2)


def check_cron(cron: str, timezone: str) -> None:
    """Raise ValueError naming the problem when ``cron`` is not a 5-field crontab line."""
    CronTrigger.from_crontab(cron, timezone=timezone)


def next_fire_time(cron: str, timezone: str, *, after: datetime) -> datetime:
    """The first time strictly after ``after`` that the crontab line ``cron`` fires,
    read in ``timezone`` (an IANA name), as an aware datetime.

    APScheduler's CronTrigger does the calendar work, daylight-saving changes included.
    """
    trigger = CronTrigger.from_crontab(cron, timezone=timezone)
    # The trigger answers "at or after now", rounded up to whole seconds; a microsecond
    # later makes it "strictly after".
    fire: datetime | None = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:  # pragma: no cover - a 5-field crontab line always fires again
        raise ValueError(f"cron {cron!r} never fires after {after.isoformat()}")
    return fire
