"""Where article text is extracted: worker processes that are killed at the deadline.

trafilatura's time grows with the page (about 2 s of CPU per MiB of list or
table markup) and only stops when it is done. In a thread, a page past its
``full_text_timeout`` could only be abandoned: the thread ran on, outside the
concurrency bound, holding the GIL against the event loop and a slot of the
thread pool the store's calls share. :class:`ExtractionPool` gives each
extraction a worker process of its own and kills it when the wait for it is
cancelled, so the deadline bounds the CPU spent as well as the wait.
"""

from __future__ import annotations

import asyncio
import logging

from monitor.article import ArticleError, extract_text
from monitor.workers import WorkerDied, WorkerPool

log = logging.getLogger("wirewatch.article")


def _extract(body: bytes, url: str | None) -> str:
    return extract_text(body, url=url)


class ExtractionPool:
    """At most ``size`` extractions at once, each in a worker process of its own.

    Workers start on first use and are kept for the next page; one whose
    extraction is cancelled (the caller's deadline) is killed on the spot and a
    fresh one is started for the next page. Implements
    :class:`monitor.article.TextExtractor`.
    """

    def __init__(self, *, size: int = 4) -> None:
        self.size = size
        self._slots = asyncio.Semaphore(size)
        self._idle: list[WorkerPool] = []
        self._closed = False

    async def extract(self, body: bytes, *, url: str | None) -> str:
        """The text of the page, or :class:`ArticleError`; cancelling kills the worker."""
        async with self._slots:
            worker = self._idle.pop() if self._idle else WorkerPool(workers=1)
            try:
                text = await worker.run(_extract, body, url)
            except asyncio.CancelledError:
                # The deadline passed, or the monitor is stopping: only killing the
                # process stops the extraction. A fresh one serves the next page.
                worker.kill()
                raise
            except WorkerDied as exc:
                # Killed for memory or crashed in C code; the page is the likely cause.
                log.error("extraction worker died url=%s; starting another", url)
                raise ArticleError("the extraction process died on this page") from exc
            except Exception:  # ArticleError and the like: the worker itself is fine
                self._put_back(worker)
                raise
            self._put_back(worker)
            return text

    def _put_back(self, worker: WorkerPool) -> None:
        if self._closed:
            worker.close(wait=False)
        else:
            self._idle.append(worker)

    def close(self, *, wait: bool = True) -> None:
        """Stop the idle workers now; busy ones stop once their page is done."""
        self._closed = True
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.close(wait=wait)
