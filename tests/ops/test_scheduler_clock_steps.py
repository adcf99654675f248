"""The wall clock stepping while the daemon runs (NTP correcting it, an operator setting
it): passes keep starting every tick, neither frozen by a step back nor bunched by a step
forward. time-machine moves the wall clock only; the monotonic clock asyncio runs on
keeps going, as on a real host."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from monitor.scheduler import Scheduler

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TICK = 0.02


async def _until(runs: list[float], count: int, *, within: float) -> None:
    deadline = time.monotonic() + within
    while len(runs) < count and time.monotonic() < deadline:
        await asyncio.sleep(TICK / 2)


@pytest.mark.parametrize("step", [timedelta(hours=-1), timedelta(hours=1)],
                         ids=["back an hour", "forward an hour"])
def test_passes_keep_ticking_when_the_wall_clock_steps(step: timedelta) -> None:
    runs: list[float] = []

    async def poll() -> None:
        runs.append(time.monotonic())

    async def main() -> tuple[int, int]:
        with time_machine.travel(START, tick=True) as clock:
            scheduler = Scheduler(tick_seconds=TICK)
            scheduler.every_tick("poll", poll)
            scheduler.start()
            try:
                await _until(runs, 3, within=5.0)
                clock.move_to(START + step)
                before = len(runs)
                # Before the fix a step back stopped every pass for the hour the clock
                # had to catch up; 5 s of wall time is 250 ticks.
                await _until(runs, before + 10, within=5.0)
                after = len(runs)
            finally:
                await scheduler.shutdown(grace_seconds=1.0)
            return before, after

    before, after = asyncio.run(main())
    assert before >= 3
    assert after >= before + 10
    # No burst either: five passes in a row never start within one tick.
    assert all(runs[i + 4] - runs[i] >= TICK for i in range(before - 1, after - 4))
