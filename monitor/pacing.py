"""Pacing: at most one message per interval on each channel, without blocking others.

Slack allows about one message per second per channel
(https://api.slack.com/apis/rate-limits#posting-messages); going faster earns 429s.
Each pacing key (a Slack channel) has its own next free slot, so a busy channel waits
alone while other channels, and polling, carry on. A 429's ``Retry-After`` pushes the
key's next slot out, so no request reaches that channel before it elapsed.

:class:`Pacer` keeps the slots in the process; :class:`SharedPacer` keeps them in the
database, for several instances sending to the same channels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger(__name__)


class Pacing(Protocol):
    """What the deliverer asks of a pacer: a slot before each send, word after it."""

    async def wait(self, key: str | None, interval: float) -> None: ...

    def sent(self, key: str | None, interval: float) -> None: ...

    def defer(self, key: str | None, seconds: float) -> None: ...


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


#: The longest a send waits for a shared slot, beyond its own process's pace. Slots
#: are wall-clock times: a host whose clock stepped back, or slots written by an
#: instance whose clock runs ahead, could otherwise hold a claimed batch of deliveries
#: until its claim expired and another instance sent them again. A send that goes
#: early at worst earns a 429, which is obeyed.
MAX_SHARED_WAIT = 15.0


class ChannelSlots(Protocol):
    """Where a :class:`SharedPacer` keeps each key's next free slot (the database)."""

    def reserve_channel_slot(self, key: str, *, now: datetime, spacing: timedelta) -> datetime:
        """Take ``key``'s next slot (``now`` at the earliest) and move the next one
        ``spacing`` past it, atomically across instances; returns the slot taken."""
        ...

    def push_channel_slot(self, key: str, *, not_before: datetime) -> None:
        """Move ``key``'s next slot to ``not_before`` unless it is later already."""
        ...


class SharedPacer:
    """A :class:`Pacer` whose slots are kept in the database, so that several instances
    sending to one channel space their messages as a single sender would.

    Per-process pacing let each of N instances send a message a second to the same
    channel: N a second in a burst, and 429s from Slack. Slot times are wall-clock
    UTC, so instances on hosts whose clocks differ space their messages by the
    interval give or take that difference.

    Should the database fail, pacing falls back to this process's own slots and the
    failure is logged: a send must neither be refused nor, once made, be reported
    failed (it would be sent again) because a slot could not be recorded.
    """

    def __init__(
        self,
        slots: ChannelSlots,
        *,
        scale: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._slots = slots
        self._scale = scale
        self._clock = clock
        self._sleep = sleep
        self._local = Pacer(scale=scale, sleep=sleep)

    def _spacing(self, interval: float) -> timedelta:
        return timedelta(seconds=max(0.0, interval) * self._scale)

    async def wait(self, key: str | None, interval: float) -> None:
        """Wait for ``key``'s next slot across all instances and take it."""
        if key is None:
            return
        # This process's own pace and Retry-After first, on the monotonic clock, exactly
        # as without sharing; then the slot all instances share.
        await self._local.wait(key, interval)
        try:
            slot = await asyncio.to_thread(self._slots.reserve_channel_slot, key,
                                           now=self._clock(), spacing=self._spacing(interval))
        except Exception as exc:  # any database failure: pace locally
            log.warning("pacing key=%s: shared slot unavailable, pacing in this process "
                        "only: %s", key, exc)
            return
        delay = (slot - self._clock()).total_seconds()
        if delay > 0:
            await self._sleep(min(delay, MAX_SHARED_WAIT))

    def sent(self, key: str | None, interval: float) -> None:
        """As :meth:`Pacer.sent`, for every instance."""
        if key is None:
            return
        self._local.sent(key, interval)
        self._push(key, self._clock() + self._spacing(interval))

    def defer(self, key: str | None, seconds: float) -> None:
        """As :meth:`Pacer.defer` (a 429's Retry-After), for every instance."""
        if key is None:
            return
        self._local.defer(key, seconds)
        self._push(key, self._clock() + timedelta(seconds=max(0.0, seconds)))

    def _push(self, key: str, not_before: datetime) -> None:
        try:
            self._slots.push_channel_slot(key, not_before=not_before)
        except Exception as exc:  # the message is out: never undo that
            log.warning("pacing key=%s: could not record the next slot: %s", key, exc)
