"""Several ``wirewatch run`` processes on one database, over a farm of loopback feeds.

Used by tests/scale/test_three_instances.py. The farm serves ``feeds`` RSS
documents at ``/f/N.xml`` with an ETag, so unchanged feeds answer 304. Every
``CHANGING_EVERY``-th feed publishes a new item every ``publish_every``
seconds until :meth:`FeedFarm.freeze`; each such item matches exactly one of
the ``rules`` rules (``r0`` … ``r49``: ``query: topicK``), the others match none.
The server records every request, so the test can tell who polled what when.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.support import FeedServer, Request, Response

REPO = Path(__file__).resolve().parents[2]
CHANGING_EVERY = 10
# Words for titles: distinct items must not look like one story to the near-duplicate grouping.
_WORDS = [hashlib.sha1(str(n).encode()).hexdigest()[:7] for n in range(400)]


def _title(feed: int, generation: int, rules: int) -> str:
    seed = int(hashlib.sha1(f"{feed}-{generation}".encode()).hexdigest(), 16)
    words = [_WORDS[(seed >> (9 * i)) % len(_WORDS)] for i in range(6)]
    return f"topic{(feed + generation) % rules} " + " ".join(words)


class FeedFarm:
    def __init__(self, server: FeedServer, *, feeds: int, rules: int,
                 publish_every: float) -> None:
        self.server = server
        self.feeds = feeds
        self.rules = rules
        self.publish_every = publish_every
        self._started = time.time()
        self._frozen_at: float | None = None
        for n in range(feeds):
            server.set_route(f"/f/{n}.xml", self._route(n))

    def url(self, n: int) -> str:
        return self.server.url(f"/f/{n}.xml")

    def freeze(self) -> None:
        """Stop publishing: every changing feed keeps the items it has now."""
        self._frozen_at = time.time()

    def generation(self, n: int, at: float | None = None) -> int:
        if n % CHANGING_EVERY:
            return 0
        at = time.time() if at is None else at
        if self._frozen_at is not None:
            at = min(at, self._frozen_at)
        return int((at - self._started) / self.publish_every)

    def expected_alerts(self) -> Counter[tuple[str, str]]:
        """(rule, link) of every matching item published so far."""
        expected: Counter[tuple[str, str]] = Counter()
        for n in range(0, self.feeds, CHANGING_EVERY):
            for generation in range(self.generation(n) + 1):
                rule = f"r{(n + generation) % self.rules}"
                expected[(rule, self._link(n, generation))] += 1
        return expected

    def _link(self, n: int, generation: int) -> str:
        return f"http://127.0.0.1/news/{n}/{generation}"

    def _route(self, n: int):  # type: ignore[no-untyped-def]
        def answer(_request: Request) -> Response:
            generation = self.generation(n)
            items = []
            for g in range(generation + 1):
                title = _title(n, g, self.rules) if n % CHANGING_EVERY == 0 else \
                    f"weather calm in district {n}"
                items.append(f"<item><title>{title}</title><link>{self._link(n, g)}</link>"
                             f"<guid>{n}-{g}</guid></item>")
            body = ('<?xml version="1.0"?><rss version="2.0"><channel><title>farm</title>'
                    f"<link>http://127.0.0.1/</link>{''.join(items)}</channel></rss>").encode()
            return Response(headers={"Content-Type": "application/rss+xml",
                                     "ETag": f'"{n}-{generation}"'}, body=body)
        return answer

    def poll_times(self, since: float = 0.0) -> dict[int, list[float]]:
        """Feed number → when each of its requests arrived (time.time())."""
        times: dict[int, list[float]] = {n: [] for n in range(self.feeds)}
        for request in self.server.requests:
            match = re.fullmatch(r"/f/(\d+)\.xml", request.path)
            if match and request.received_at >= since:
                times[int(match.group(1))].append(request.received_at)
        return times


def config_text(database: str, farm: FeedFarm, *, interval: str = "2s") -> str:
    lines = [f'database: "{database}"', "defaults:", f"  interval: {interval}",
             "  min_interval: 1s", "  timeout: 5s",
             # All feeds share one loopback host; a real farm spreads them over many.
             "concurrency:", "  per_host: 25", "feeds:"]
    for n in range(farm.feeds):
        lines += [f"  - name: f{n}", f"    url: {farm.url(n)}"]
    # Flood control off: every alert goes out on its own, so each can be counted.
    lines += ["notifiers:", "  desk:", "    type: console", "    burst:", "      max: 100000",
              "rules:"]
    for k in range(farm.rules):
        lines += [f"  - name: r{k}", f"    query: topic{k}", "    notify: [desk]"]
    return "\n".join(lines) + "\n"


class Instance:
    """One ``python -m monitor run`` with its own output files."""

    def __init__(self, config: Path, name: str, *, lease_seconds: float) -> None:
        self.name = name
        self.stdout_path = config.parent / f"{name}.out"
        self.stderr_path = config.parent / f"{name}.err"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(config)],
                cwd=REPO, stdout=out, stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
                     "WIREWATCH_FEED_LEASE_SECONDS": str(lease_seconds)})

    @property
    def instance_id(self) -> str:
        import socket

        return f"{socket.gethostname()}:{self.process.pid}"

    def alerts(self) -> Counter[tuple[str, str]]:
        """(rule, link) of every alert block this instance printed."""
        text = self.stdout_path.read_text(encoding="utf-8")
        found = re.findall(r"^\[wirewatch\] (\S+)\n(?:  .*\n)*?  link:\s+(\S+)", text, re.M)
        return Counter(found)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no handler runs, no lease is given back
        self.process.wait()
