"""Concurrency limits for polling: a few requests per host, a cap overall.

A newsroom watches many feeds on the same few hosts (one publisher, many
sections). Politeness is per host: at most ``per_host`` requests in flight to
one origin (scheme, host, port — the unit browsers pool connections by), and
at most ``total`` polls at once whatever their host.

A poll first waits for its host, then for a global slot, so feeds waiting on a
busy host never hold global slots that feeds on idle hosts could use. The host
slot is given back as soon as the HTTP exchange is over (parsing and storing
do not bother the server); the global slot is held until the poll is done, which
bounds how many response bodies are in memory at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PER_HOST = 2
DEFAULT_TOTAL = 50


def origin_of(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


@dataclass(slots=True)
class _Host:
    semaphore: asyncio.Semaphore
    users: int = 0


class Slot:
    """A granted poll. ``release_host()`` once the HTTP exchange is over."""

    def __init__(self, host: _Host) -> None:
        self._host: _Host | None = host

    def release_host(self) -> None:
        if self._host is not None:
            self._host.semaphore.release()
            self._host = None


class HostLimits:
    """Per-origin and global concurrency for one event loop."""

    def __init__(self, *, per_host: int = DEFAULT_PER_HOST, total: int = DEFAULT_TOTAL) -> None:
        if per_host < 1 or total < 1:
            raise ValueError("concurrency limits must be at least 1")
        self.per_host = per_host
        self.total = total
        self._global = asyncio.Semaphore(total)
        self._hosts: dict[tuple[str, str, int | None], _Host] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[Slot]:
        key = origin_of(url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(asyncio.Semaphore(self.per_host))
        host.users += 1
        slot: Slot | None = None
        try:
            await host.semaphore.acquire()
            slot = Slot(host)
            await self._global.acquire()
            try:
                yield slot
            finally:
                self._global.release()
        finally:
            if slot is not None:
                slot.release_host()
            host.users -= 1
            if host.users == 0:
                del self._hosts[key]

    def hosts_in_use(self) -> int:
        return len(self._hosts)
