"""Where feed bodies are parsed: a worker thread, or a pool of processes.

feedparser is pure Python and holds the GIL, so in a thread it competes with
the event loop (a 10 MiB body can stall every other poll for seconds) and can
never use more than one core. :class:`ProcessParser` parses in worker
processes (:mod:`monitor.workers`) instead: both cores work, the loop stays
responsive, and a document built to exhaust memory takes down a worker, not
the monitor (the pool is rebuilt and the feed gets an error).

Both implement :class:`FeedParser`; the poller does not care which it has.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Protocol

from monitor.parse import FeedParseError, ParsedFeed, parse_feed
from monitor.workers import WorkerDied, WorkerPool

log = logging.getLogger("wirewatch.parse")


class FeedParser(Protocol):
    async def parse(self, body: bytes, *, url: str, content_type: str | None) -> ParsedFeed: ...

    @property
    def cpu_seconds(self) -> float:
        """CPU time spent parsing so far (for benchmarks and metrics)."""
        ...

    def close(self) -> None: ...


def _timed_parse(body: bytes, url: str, content_type: str | None) -> tuple[ParsedFeed, float]:
    started = time.thread_time()
    try:
        return parse_feed(body, url=url, content_type=content_type), time.thread_time() - started
    except FeedParseError as exc:
        # Carry the CPU spent on a failed parse too; re-raised by the caller.
        exc.cpu_seconds = time.thread_time() - started  # type: ignore[attr-defined]
        raise


class ThreadParser:
    """Parses in the default thread pool: simple, one core."""

    def __init__(self) -> None:
        self.cpu_seconds = 0.0

    async def parse(self, body: bytes, *, url: str, content_type: str | None) -> ParsedFeed:
        try:
            parsed, cpu = await asyncio.to_thread(_timed_parse, body, url, content_type)
        except FeedParseError as exc:
            self.cpu_seconds += getattr(exc, "cpu_seconds", 0.0)
            raise
        self.cpu_seconds += cpu
        return parsed

    def close(self) -> None:
        pass


def _parse_in_worker(
    body: bytes, url: str, content_type: str | None
) -> tuple[ParsedFeed, float, int]:
    parsed, cpu = _timed_parse(body, url, content_type)
    return parsed, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class ProcessParser:
    """Parses in ``workers`` processes (default: one per core), started on first use."""

    def __init__(self, *, workers: int | None = None) -> None:
        self._pool = WorkerPool(workers=workers)
        self.workers = self._pool.workers
        self.cpu_seconds = 0.0
        self.worker_peak_rss_kib = 0  # the largest worker's peak resident memory

    async def parse(self, body: bytes, *, url: str, content_type: str | None) -> ParsedFeed:
        try:
            parsed, cpu, rss = await self._pool.run(_parse_in_worker, body, url, content_type)
        except FeedParseError as exc:
            self.cpu_seconds += getattr(exc, "cpu_seconds", 0.0)
            raise
        except WorkerDied as exc:
            # A worker died (killed for memory, crashed in C code): the pool starts
            # afresh, and the feed being parsed, the likely cause, gets the blame.
            log.error("parse worker died url=%s; restarting the pool", url)
            raise FeedParseError("the parser process died on this document") from exc
        self.cpu_seconds += cpu
        self.worker_peak_rss_kib = max(self.worker_peak_rss_kib, rss)
        return parsed

    def close(self) -> None:
        self._pool.close()
