"""Pacing: slots per channel, counted from the end of the previous send."""

from __future__ import annotations

import asyncio

from monitor.pacing import Pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_the_next_send_waits_a_full_interval_after_a_slow_send_finished() -> None:
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)

    async def two_sends() -> None:
        await pacer.wait("C1", 1.0)
        time.now += 0.4          # the first request took 0.4 s to be answered
        pacer.sent("C1", 1.0)
        await pacer.wait("C1", 1.0)

    asyncio.run(two_sends())
    # Counting from the first request's start would wait only 0.6 s, and a request
    # delayed on its way could then reach the server less than 1 s after the last.
    assert time.slept == [1.0]


def test_channels_are_paced_apart_and_unkeyed_sends_never_wait() -> None:
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)

    async def sends() -> None:
        await pacer.wait("C1", 1.0)
        pacer.sent("C1", 1.0)
        await pacer.wait("C2", 1.0)       # another channel: no wait
        await pacer.wait(None, 1.0)       # no pacing key: no wait
        await pacer.wait("C1", 1.0)

    asyncio.run(sends())
    assert time.slept == [1.0]


def test_retry_after_holds_the_channel_even_past_the_interval() -> None:
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)

    async def sends() -> None:
        await pacer.wait("C1", 1.0)
        pacer.defer("C1", 2.0)
        pacer.sent("C1", 1.0)
        await pacer.wait("C1", 1.0)

    asyncio.run(sends())
    assert time.slept == [2.0]
