"""Where feed bodies are parsed: a worker thread, or a pool of processes.

feedparser is pure Python and holds the GIL, so in a thread it competes with
the event loop (a 10 MiB body can stall every other poll for seconds) and can
never use more than one core. :class:`ProcessParser` parses in worker
processes instead: both cores work, the loop stays responsive, and a document
built to exhaust memory takes down a worker, not the monitor (the pool is
rebuilt and the feed gets an error).

Both implement :class:`FeedParser`; the poller does not care which it has.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
from typing import Protocol

from monitor.parse import FeedParseError, ParsedFeed, parse_feed

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


def _exit_with_parent() -> None:
    """Pool initializer: end this worker as soon as the process that owns the pool ends.

    Without it, a worker outlives a monitor that died without closing its pool
    (SIGKILL, the OOM killer, ``run --once`` stopped by SIGTERM): the worker waits
    on its task queue, whose write end it holds itself, so it never sees EOF; and
    as every worker also holds the forkserver's "alive" pipe and the resource
    tracker's pipe, those two stay as well. All of them idle, for good.
    ``parent_process().join()`` waits on the sentinel pipe that multiprocessing
    keeps open in the parent for exactly this purpose; once the workers are gone,
    the forkserver and the tracker see EOF and exit by themselves.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_gone, args=(parent,), daemon=True,
                         name="parent-watch").start()


def _exit_when_gone(parent: BaseProcess) -> None:
    parent.join()
    os._exit(1)  # no cleanup to do: the parse in hand has nobody to return to


class ProcessParser:
    """Parses in ``workers`` processes (default: one per core), started on first use.

    Workers are started with ``forkserver`` (``spawn`` where unavailable): forking
    a process that runs threads and an event loop is unsafe.
    """

    def __init__(self, *, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.cpu_seconds = 0.0
        self.worker_peak_rss_kib = 0  # the largest worker's peak resident memory
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                             initializer=_exit_with_parent)
        return self._pool

    async def parse(self, body: bytes, *, url: str, content_type: str | None) -> ParsedFeed:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            parsed, cpu, rss = await loop.run_in_executor(
                pool, _parse_in_worker, body, url, content_type
            )
        except FeedParseError as exc:
            self.cpu_seconds += getattr(exc, "cpu_seconds", 0.0)
            raise
        except BrokenProcessPool as exc:
            # A worker died (killed for memory, crashed in C code): start afresh
            # and blame the feed being parsed, which is the likely cause.
            log.error("parse worker died url=%s; restarting the pool", url)
            self._reset(pool)
            raise FeedParseError("the parser process died on this document") from exc
        self.cpu_seconds += cpu
        self.worker_peak_rss_kib = max(self.worker_peak_rss_kib, rss)
        return parsed

    def _reset(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
