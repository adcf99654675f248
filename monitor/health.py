"""``/healthz`` and ``/metrics`` over HTTP, for the operators' monitoring.

The listener runs in its own thread, not on the event loop: if the loop is
stuck, ``/healthz`` still answers, and answers 503 because the scheduler has
stopped ticking, which is exactly what a supervisor needs to know.

``/healthz`` is 200 while all hold: the scheduler ticked recently, the database
answers ``SELECT 1``, and no pass (poll, deliver) has failed on every tick for
30 s. Otherwise 503, with the reasons as the body. Retention retries on its own
schedule (``Monitor.prune_if_due``) and is not judged here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from monitor.metrics import CONTENT_TYPE, Metrics
from monitor.scheduler import PassFailure

log = logging.getLogger("wirewatch.health")


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    reason: str


class HealthCheck:
    """Judges the daemon's health from its last tick and a database ping.

    ``last_tick`` returns the monotonic time of the last scheduler tick (None
    before the first); ``ping`` raises when the database does not answer.
    """

    def __init__(
        self,
        *,
        last_tick: Callable[[], float | None],
        ping: Callable[[], None],
        failing: Callable[[], Mapping[str, PassFailure]] = dict,
        max_tick_age: float = 10.0,
        max_failing_age: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._last_tick = last_tick
        self._ping = ping
        self._failing = failing
        self._max_tick_age = max_tick_age
        self._max_failing_age = max_failing_age
        self._clock = clock

    def check(self) -> Health:
        problems: list[str] = []
        last = self._last_tick()
        if last is None:
            problems.append("scheduler: not ticking yet")
        else:
            age = self._clock() - last
            if age > self._max_tick_age:
                problems.append(f"scheduler: last tick {age:.1f}s ago "
                                f"(limit {self._max_tick_age:.0f}s)")
        try:
            self._ping()
        except Exception as exc:
            # The class name and first line only: a driver message may carry the URL.
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(f"database: {exc.__class__.__name__}: {first_line[:200]}")
        # A scheduler that ticks is not enough: a pass that fails on every tick (a
        # damaged database that still answers SELECT 1) polls or delivers nothing.
        # One failure is a blip, retried on the next tick; only a streak counts.
        for name, failure in sorted(self._failing().items()):
            age = self._clock() - failure.since
            if age >= self._max_failing_age:
                problems.append(f"{name}: failing for {age:.0f}s ({failure.count} times): "
                                f"{failure.error}")
        if problems:
            return Health(ok=False, reason="; ".join(problems))
        assert last is not None  # else "not ticking yet" is among the problems
        return Health(ok=True, reason=f"ok: scheduler ticked {self._clock() - last:.1f}s ago, "
                                      "database answers")


class OpsServer:
    """The HTTP listener; ``start()`` binds (errors surface at once), ``close()`` stops it."""

    def __init__(self, *, host: str, port: int, health: HealthCheck, metrics: Metrics) -> None:
        self._health = health
        self._metrics = metrics
        handler = _handler(health, metrics)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="wirewatch-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http listening on %s:%d (/healthz, /metrics)",
                 self._server.server_address[0], self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler(health: HealthCheck, metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "wirewatch"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                result = health.check()
                self._reply(200 if result.ok else 503, result.reason.encode() + b"\n",
                            "text/plain; charset=utf-8")
            elif path == "/metrics":
                self._reply(200, metrics.render(), CONTENT_TYPE)
            else:
                self._reply(404, b"not found: try /healthz or /metrics\n",
                            "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # every scrape in the log would drown the lines that matter

    return Handler
