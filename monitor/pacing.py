"""Pacing: at most one message per interval on each channel, without blocking others.

Slack allows about one message per second per channel
(https://api.slack.com/apis/rate-limits#posting-messages); going faster earns 429s.
Each pacing key (a Slack channel) has its own next free slot, so a busy channel waits
alone while other channels, and polling, carry on. A 429's ``Retry-After`` pushes the
key's next slot out, so no request reaches that channel before it elapsed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Pacer:
    """Hands out send slots per key, ``interval`` seconds apart.

    ``scale`` shrinks every interval (tests use a small one); ``defer`` is never scaled,
    because it carries a server's Retry-After.
    """

    def __init__(
        self,
        *,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._scale = scale
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, key: str | None, interval: float) -> None:
        """Wait for ``key``'s next slot and take it (no wait without a key)."""
        if key is None:
            return
        now = self._clock()
        slot = max(now, self._next.get(key, now))
        # Reserve before sleeping: a second sender on the same key queues behind us.
        self._next[key] = slot + max(0.0, interval) * self._scale
        if slot > now:
            await self._sleep(slot - now)

    def sent(self, key: str | None, interval: float) -> None:
        """The send that held ``key``'s slot has finished: the next one starts at
        least ``interval`` after now.

        Slots alone space the *starts* of requests; a request slowed on its way
        (a busy machine, a new connection) could then reach the server less than
        ``interval`` before the next one. Counting from the answer guarantees the
        spacing the server sees, since it received the request before answering.
        """
        if key is None:
            return
        after = self._clock() + max(0.0, interval) * self._scale
        self._next[key] = max(self._next.get(key, after), after)

    def defer(self, key: str | None, seconds: float) -> None:
        """Nothing goes to ``key`` for ``seconds`` from now (a 429's Retry-After)."""
        if key is None:
            return
        until = self._clock() + max(0.0, seconds)
        self._next[key] = max(self._next.get(key, until), until)

    def next_slot(self, key: str) -> float | None:
        return self._next.get(key)
