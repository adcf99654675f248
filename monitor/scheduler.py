"""When things run: ticks that start polling and delivery passes; cron times (APScheduler 3).

No business logic lives here. The store decides which feeds are due; this
module only makes sure a pass starts soon after the previous one finished,
and never two of the same kind at once.

Ticks run on the event loop's monotonic clock, not on an APScheduler interval job:
that trigger schedules each run from the previous one on the wall clock, so a clock
stepped back an hour (NTP, an operator) stopped every pass (polling, delivery, the
heartbeat) for the hour it took to catch up. APScheduler's CronTrigger still does the
calendar work of digests and quiet hours (:func:`next_fire_time`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("wirewatch.scheduler")

Pass = Callable[[], Awaitable[object]]

#: A pass that keeps failing the same way is logged with its traceback once, then
#: one line this often, not on every tick.
REPEAT_LOG_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PassFailure:
    """A pass failing on every tick since ``since`` (monotonic seconds)."""

    since: float
    count: int
    error: str
    logged_at: float


class Scheduler:
    """Runs named passes every ``tick`` seconds, skipping a tick while one still runs."""

    def __init__(self, *, tick_seconds: float = 1.0) -> None:
        self._tick = tick_seconds
        self._started = False
        self._passes: dict[str, Pass] = {}
        self._tickers: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, asyncio.Task[object]] = {}
        self._failures: dict[str, PassFailure] = {}
        self.last_tick_at: datetime | None = None

    def failing(self) -> dict[str, PassFailure]:
        """The passes whose latest run failed (read by /healthz from its own thread:
        entries are replaced, never changed, so a copy is consistent)."""
        return dict(self._failures)

    def every_tick(self, name: str, run: Pass) -> None:
        """Start ``run`` every tick from :meth:`start` on, unless it is still running."""
        self._passes[name] = run
        if self._started:
            self._start_ticking(name, run)

    def _start_ticking(self, name: str, run: Pass) -> None:
        self._tickers[name] = asyncio.create_task(self._ticks(name, run), name=f"tick:{name}")

    async def _ticks(self, name: str, run: Pass) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            self.last_tick_at = datetime.now(UTC)
            task = self._running.get(name)
            # A pass still working skips this tick: skipping is the point.
            if task is None or task.done():
                self._running[name] = asyncio.create_task(self._guarded(name, run), name=name)
            due += self._tick
            now = loop.time()
            # Ticks missed while the loop was busy (or the host suspended) are dropped,
            # not run back to back.
            due = max(due, now)
            await asyncio.sleep(due - now)

    async def _guarded(self, name: str, run: Pass) -> object:
        try:
            result = await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A failing pass is logged and retried next tick; it must never
            # stop the daemon.
            self._failed(name, exc)
            return None
        failure = self._failures.pop(name, None)
        if failure is not None:
            log.info("pass=%s recovered after failing %d times in %.0fs", name, failure.count,
                     time.monotonic() - failure.since)
        return result

    def _failed(self, name: str, exc: Exception) -> None:
        now = time.monotonic()
        text = str(exc)
        error = f"{exc.__class__.__name__}: {text.splitlines()[0][:200] if text else ''}"
        failure = self._failures.get(name)
        if failure is None or failure.error != error:
            log.exception("pass=%s failed", name)
            since = now if failure is None else failure.since
            count = 1 if failure is None else failure.count + 1
            self._failures[name] = PassFailure(since=since, count=count, error=error,
                                               logged_at=now)
            return
        failure = replace(failure, count=failure.count + 1)
        if now - failure.logged_at >= REPEAT_LOG_SECONDS:
            log.error("pass=%s still failing: %d times in %.0fs, the same way: %s", name,
                      failure.count, now - failure.since, error)
            failure = replace(failure, logged_at=now)
        self._failures[name] = failure

    def start(self) -> None:
        """Start ticking; call it with the event loop running."""
        self._started = True
        for name, run in self._passes.items():
            self._start_ticking(name, run)

    async def shutdown(self, *, grace_seconds: float = 10.0) -> None:
        """Stop ticking, then let running passes finish within the grace period."""
        self._started = False
        for ticker in self._tickers.values():
            ticker.cancel()
        await asyncio.gather(*self._tickers.values(), return_exceptions=True)
        self._tickers.clear()
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
    # APScheduler 3.11 moves to the next day (week, month) by adding the wall-clock
    # distance as real time, so across the hour lost when clocks spring forward it
    # overshoots: "0 0 * * *" from 00:30 on that day answered the midnight after next,
    # a day late. The same search on the wall clock alone has no such hour; its answer
    # wins when it is a real, earlier time in the zone.
    zone = ZoneInfo(timezone)
    wall_trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    local = after.astimezone(zone)
    wall: datetime | None = wall_trigger.get_next_fire_time(
        None, local.replace(tzinfo=UTC, fold=0) + timedelta(microseconds=1))
    if wall is not None:
        for fold in (0, 1):
            candidate = wall.replace(tzinfo=zone, fold=fold)
            exists = candidate.astimezone(UTC).astimezone(zone).replace(fold=0) == \
                candidate.replace(fold=0)
            if exists and after < candidate.astimezone(UTC) < fire.astimezone(UTC):
                return candidate
    return fire
