"""Worker processes for CPU-heavy work on untrusted input (feed parsing, article extraction).

:class:`WorkerPool` is a process pool started on first use, whose workers end
with the process that owns them, and which can be killed and rebuilt: a worker
that dies (the OOM killer, a crash in C code) breaks only the task in hand, and a
task that overruns its deadline can be stopped outright, which a thread cannot.

Exceptions::

    WorkerDied            a worker ended while running the task (the pool is rebuilt)
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.process import BaseProcess
from typing import TypeVar

T = TypeVar("T")


class WorkerDied(Exception):
    """A worker process ended while running the task; the pool has been rebuilt."""


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
    os._exit(1)  # no cleanup to do: the task in hand has nobody to return to


class WorkerPool:
    """``workers`` processes (default: one per core), started on first use.

    Workers are started with ``forkserver`` (``spawn`` where unavailable): forking
    a process that runs threads and an event loop is unsafe.
    """

    def __init__(self, *, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
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

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` in a worker; its exceptions are raised here.

        Raises :class:`WorkerDied` if the worker ended mid-task; the next call
        starts a fresh pool.
        """
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise WorkerDied(str(exc)) from exc

    def kill(self) -> None:
        """Stop every worker now, mid-task or not; the next call starts a fresh pool.

        SIGKILL, not SIGTERM: the point is that no more CPU is spent, and a worker
        deep in C code (lxml) would only see SIGTERM once it came back to Python.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # The workers of a pool: Python 3.14 offers ProcessPoolExecutor.kill_workers();
        # before it, the pid map that method reads is the only way to them.
        for process in list((pool._processes or {}).values()):
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
                    os.kill(process.pid, signal.SIGKILL)
        pool.shutdown(wait=False, cancel_futures=True)

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers once the task in hand, if any, is done (``wait``: until then)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
