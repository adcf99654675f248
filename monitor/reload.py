"""Hot reload: notice that config.yaml changed (or SIGHUP), load it, apply it or reject it.

The watcher polls the file once a second: its size, mtime and, when those
moved, a SHA-256 of the bytes. Polling (rather than inotify) works the same on
every filesystem, through editors that save by rename, bind mounts and network
shares, and one ``stat`` a second costs nothing; a save is applied well within
the 5 s the operators were promised.

A change is read once it has settled: the file must look the same on two looks in
a row. Editors that save in place truncate the file and write it in pieces; read
between two pieces, an empty file would be reported as broken, and a file cut
off between two rules or feeds is valid YAML that would be applied, dropping
those rules or feeds (and every item polled meanwhile is never matched against
them again).

A config is judged by its *content*: touching the file, or saving the same
bytes, does nothing; a broken version is reported once (not once a second),
and fixing the file applies it. A SIGHUP re-reads the file even when it looks
unchanged (the operator asked for it).

The loader and the applier are passed in, so this module never reads the
environment and never knows what "applying" means.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Generic, TypeVar

from monitor.durations import doubled

log = logging.getLogger("wirewatch.reload")

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the watcher compares between two looks at the file."""

    size: int
    mtime_ns: int
    inode: int


def fingerprint(path: Path) -> Fingerprint | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # mid-rename, or deleted: look again next second
    return Fingerprint(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A config version that failed to load: its digest and its problems.

    Each problem is one ``file:line: path: message``, possibly with the lines of
    a rule's query and the caret under the column after it.
    """

    digest: str
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Version:
    """A settled, readable version of the file, not yet loaded."""

    digest: str
    text: str
    seen: Fingerprint


@dataclass(frozen=True, slots=True)
class _Loaded(Generic[C]):
    """What loading a version gave: a config, or the problems that refuse it."""

    config: C | None = None
    problems: tuple[str, ...] = ()


class ConfigReloader(Generic[C]):
    """Turns file changes into ``apply(config)`` or ``reject(rejected)`` calls.

    ``load(text)`` returns a config or raises one of ``errors``; its ``str()``
    lists the problems one per line. Under ``run``, ``load`` runs in a worker
    thread (so it must not touch the event loop's objects) and ``apply`` and
    ``reject`` on the event loop; a version is applied or rejected once, however
    often it is seen.
    """

    def __init__(
        self,
        *,
        path: Path,
        load: Callable[[str], C],
        apply: Callable[[C], None],
        reject: Callable[[Rejected], None],
        errors: tuple[type[Exception], ...],
        initial_text: str | None = None,
        interval: float = 1.0,
    ) -> None:
        self._path = path
        self._load = load
        self._apply = apply
        self._reject = reject
        self._errors = errors
        self._interval = interval
        self._seen = fingerprint(path)
        self._settling: Fingerprint | None = None
        self._current_digest = _digest(initial_text) if initial_text is not None else None
        self._rejected_digest: str | None = None
        self._forced = asyncio.Event()
        self.applied = 0
        self.rejected = 0

    def request(self) -> None:
        """Re-read the file on the next turn, even if it looks unchanged (SIGHUP)."""
        self._forced.set()

    #: The longest wait between tries of a reload that keeps failing.
    LONGEST_RETRY_WAIT = 60.0

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            # A reload that failed (the database is down) is tried again ever more
            # slowly: each try loads and compiles the whole config.
            forced = await self._wait(stop, self._retry_wait(failures))
            if stop.is_set():
                return
            try:
                outcome = await self.check_off_loop(forced=forced)
            except Exception as exc:  # the watcher must outlive any one bad turn
                failures += 1
                if failures == 1:
                    log.exception("config reload failed unexpectedly; the running config stays")
                else:  # the traceback once, then one line a try, not a traceback a second
                    log.warning("config reload failed again (%d tries): %s: %s; the running "
                                "config stays, next try in %.0f s", failures,
                                type(exc).__name__, exc, self._retry_wait(failures))
                continue
            if failures and outcome == "applied":
                log.info("config reload applied after %d failed tries", failures)
            failures = 0

    def _retry_wait(self, failures: int) -> float:
        """Seconds before the next look after ``failures`` failed tries in a row."""
        wait = doubled(timedelta(seconds=self._interval), failures,
                       most=timedelta(seconds=self.LONGEST_RETRY_WAIT))
        return wait.total_seconds()

    async def _wait(self, stop: asyncio.Event, timeout: float) -> bool:
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._forced.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        forced = self._forced.is_set()
        self._forced.clear()
        return forced

    def check(self, *, forced: bool = False) -> str:
        """Look at the file once; returns what happened ("unchanged", "applied", ...)."""
        version = self._read(forced)
        if isinstance(version, str):
            return version
        return self._settle(version, self._loaded(version))

    async def check_off_loop(self, *, forced: bool = False) -> str:
        """``check``, with the loading done in a worker thread.

        Loading compiles every rule: about 1.3 s for 10,000 rules. On the event loop
        that would stop polling, delivery and the health endpoint for as long; in a
        thread the loop gets the interpreter back every few milliseconds. Applying
        stays on the loop, between two of its steps, as before.
        """
        version = self._read(forced)
        if isinstance(version, str):
            return version
        loaded = await asyncio.to_thread(self._loaded, version)
        return self._settle(version, loaded)

    def _read(self, forced: bool) -> _Version | str:
        """The file's new version to load, or what happened instead."""
        seen = fingerprint(self._path)
        if seen is None:
            if forced:
                log.warning("config reload: %s is missing; the running config stays", self._path)
            return "missing"
        if not forced:
            if seen == self._seen:
                self._settling = None
                return "unchanged"
            if seen != self._settling:
                self._settling = seen  # still being written, perhaps: look again
                return "changing"
        self._settling = None
        try:
            data = self._path.read_bytes()
        except OSError as exc:
            log.warning("config reload: cannot read %s (%s); the running config stays",
                        self._path, exc.strerror or exc.__class__.__name__)
            return "unreadable"
        if fingerprint(self._path) != seen:
            return "changing"  # written again while it was read: look again next turn
        self._seen = seen
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._current_digest and not forced:
            return "unchanged"  # touched, or saved without a change
        if digest == self._rejected_digest and not forced:
            return "unchanged"  # this broken version was already reported
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._rejected(digest, (f"{self._path}: not UTF-8 text: {exc.reason} "
                                           f"at byte {exc.start}",))
        return _Version(digest=digest, text=text, seen=seen)

    def _loaded(self, version: _Version) -> _Loaded[C]:
        """The loaded config, or its problems; other errors propagate."""
        try:
            return _Loaded(config=self._load(version.text))
        except self._errors as exc:
            # ConfigError keeps each problem (a rule's caret lines included) whole.
            problems = getattr(exc, "problems", None) or [exc]
            return _Loaded(problems=tuple(str(problem) for problem in problems))

    def _settle(self, version: _Version, loaded: _Loaded[C]) -> str:
        if loaded.config is None:
            return self._rejected(version.digest, loaded.problems)
        try:
            self._apply(loaded.config)
        except Exception:
            # Not applied (the database failed): read it again on the next turn.
            self._seen, self._settling = None, version.seen
            raise
        self._current_digest = version.digest
        self._rejected_digest = None
        self.applied += 1
        return "applied"

    def _rejected(self, digest: str, problems: tuple[str, ...]) -> str:
        already = digest == self._rejected_digest
        self._rejected_digest = digest
        if already:
            return "unchanged"
        self.rejected += 1
        self._reject(Rejected(digest=digest, problems=problems))
        return "rejected"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
