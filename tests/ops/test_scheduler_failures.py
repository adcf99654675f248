"""A pass that fails on every tick: one traceback, a line a minute, and a recovery line;
the failure is visible to /healthz (Scheduler.failing) until a run succeeds."""

from __future__ import annotations

import asyncio
import logging

import pytest

from monitor.scheduler import Scheduler


def test_a_pass_failing_every_tick_logs_one_traceback_then_its_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []
    seen_failing: list[int] = []

    async def deliver() -> None:
        runs.append(1)
        if len(runs) <= 8:
            raise RuntimeError("database disk image is malformed")

    async def main() -> Scheduler:
        scheduler = Scheduler(tick_seconds=0.02)
        scheduler.every_tick("deliver", deliver)
        scheduler.start()
        while len(runs) < 12:
            failing = scheduler.failing()
            if "deliver" in failing:
                seen_failing.append(failing["deliver"].count)
            await asyncio.sleep(0.01)
        await scheduler.shutdown(grace_seconds=1.0)
        return scheduler

    with caplog.at_level(logging.INFO, logger="wirewatch.scheduler"):
        scheduler = asyncio.run(main())

    records = [r for r in caplog.records if r.name == "wirewatch.scheduler"]
    failed = [r for r in records if r.getMessage() == "pass=deliver failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None
    messages = [r.getMessage() for r in records]
    assert [m for m in messages if "recovered" in m] == messages[-1:]
    assert messages[-1].startswith("pass=deliver recovered after failing 8 times")
    assert max(seen_failing) >= 2
    assert scheduler.failing() == {}
