"""Soak: the daemon for N minutes over 500 local feeds, 10% changing every minute, 200 rules.

    python -m bench soak                 # 30 minutes, as the issue asks
    python -m bench soak --minutes 10    # shorter; warm-up is min(5, minutes/3)

It runs ``wirewatch run`` as a subprocess against a loopback feed server held
by this process, samples the daemon's resident memory (VmRSS) and open file
descriptors from /proc every 10 s, reads the scheduler-lag histogram from
/metrics, and at the end checks that every hit was delivered and that every
matching item the server published became exactly one hit.

Pass criteria: RSS growth after warm-up < 10 %, open fds flat after warm-up
(the peak of the last third of samples at most 5 above the first third's:
sockets come and go with each poll burst, a leak makes the peaks climb),
scheduler lag p99 after warm-up < 2 s, every hit delivered, exit 0 on SIGTERM.
Prints a table, then ONE line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEEDS = 500
RULES = 200
ITEMS_PER_FEED = 20
CHANGE_FRACTION = 0.10
SAMPLE_EVERY = 10.0
WORDS = ("harbour", "council", "budget", "river", "station", "festival", "market", "school",
         "bridge", "election", "court", "storm", "museum", "airport", "factory", "treaty")


class FeedFarm:
    """500 RSS documents in memory; ``change()`` adds one item to a tenth of them."""

    def __init__(self, *, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._items: list[list[tuple[str, str, str]]] = [[] for _ in range(FEEDS)]
        self._bodies: list[bytes] = [b""] * FEEDS
        self._versions = [0] * FEEDS
        self._serial = 0
        self.matching_published = 0
        self.matching_initial = 0
        for feed in range(FEEDS):
            for _ in range(ITEMS_PER_FEED):
                # The starting items match no rule: the first poll stores 10,000
                # items without a flood of alerts.
                self._add(feed, topic=self._rng.randrange(RULES, 2 * RULES))
            self._render(feed)

    def _add(self, feed: int, *, topic: int) -> None:
        self._serial += 1
        words = " ".join(self._rng.sample(WORDS, 4))
        title = f"Report {self._serial} on topic{topic} {words}"
        self._items[feed].insert(0, (f"soak-{self._serial}", title,
                                     format_datetime(datetime.now(UTC), usegmt=True)))
        del self._items[feed][ITEMS_PER_FEED:]

    def _render(self, feed: int) -> None:
        entries = "".join(
            f"<item><title>{title}</title><link>http://127.0.0.1/{guid}</link>"
            f"<guid isPermaLink=\"false\">{guid}</guid><pubDate>{date}</pubDate>"
            f"<description>{title}. Filed by the soak desk.</description></item>"
            for guid, title, date in self._items[feed])
        self._bodies[feed] = (f"<?xml version=\"1.0\"?><rss version=\"2.0\"><channel>"
                              f"<title>soak {feed}</title><link>http://127.0.0.1/</link>"
                              f"<description>soak</description>{entries}</channel></rss>"
                              ).encode()
        self._versions[feed] += 1

    def change(self) -> int:
        """A new item in 10% of the feeds; half of new items match a rule."""
        with self._lock:
            chosen = self._rng.sample(range(FEEDS), int(FEEDS * CHANGE_FRACTION))
            for feed in chosen:
                topic = self._rng.randrange(0, 2 * RULES)
                if topic < RULES:
                    self.matching_published += 1
                self._add(feed, topic=topic)
                self._render(feed)
            return len(chosen)

    def get(self, feed: int) -> tuple[bytes, str]:
        with self._lock:
            return self._bodies[feed], f'"v{self._versions[feed]}"'


def serve(farm: FeedFarm) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            try:
                feed = int(self.path.strip("/").removesuffix(".rss"))
                body, etag = farm.get(feed)
            except (ValueError, IndexError):
                self.send_error(404)
                return
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_config(path: Path, *, db: Path, feed_port: int, http_port: int) -> None:
    lines = [f'database: "sqlite:///{db}"', "http:", f"  listen: 127.0.0.1:{http_port}",
             "defaults:", "  interval: 1m", "  min_interval: 1m", "  max_interval: 1m",
             # One loopback server stands in for 500 publishers: the per-host
             # politeness limit (2 by default) would serialize them all.
             "concurrency:", "  per_host: 50",
             "notifiers:", "  out:", "    type: console", "feeds:"]
    for feed in range(FEEDS):
        lines += [f"  - name: soak-{feed}", f"    url: http://127.0.0.1:{feed_port}/{feed}.rss"]
    lines.append("rules:")
    for rule in range(RULES):
        lines += [f"  - name: topic-{rule}", f"    query: topic{rule}"]
    path.write_text("\n".join(lines) + "\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(le, cumulative count) pairs of a histogram in Prometheus text."""
    pairs = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            pairs.append((float("inf") if le == "+Inf" else float(le),
                          float(line.rsplit(" ", 1)[1])))
    return sorted(pairs)


def quantile_upper_bound(buckets: list[tuple[float, float]], q: float) -> float:
    """The smallest bucket bound under which a fraction ``q`` of observations fall."""
    if not buckets or buckets[-1][1] == 0:
        return 0.0
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le
    return float("inf")


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args(argv)
    total = args.minutes * 60
    warmup = min(300.0, total / 3)

    farm = FeedFarm()
    server = serve(farm)
    work = Path(tempfile.mkdtemp(prefix="wirewatch-soak-"))
    db, config = work / "soak.db", work / "config.yaml"
    http_port = free_port()
    write_config(config, db=db, feed_port=server.server_address[1], http_port=http_port)
    out, err = (work / "daemon.out").open("w"), (work / "daemon.err").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=out, stderr=err)
    print(f"soak: {FEEDS} feeds, {RULES} rules, {args.minutes:g} min, warm-up {warmup:.0f}s; "
          f"work dir {work}; 2 shared cores (other test runs may share them)")
    print(f"{'t(s)':>6} {'rss(MiB)':>9} {'fds':>5} {'outbox':>7} {'lag_p99<=':>10} {'changed':>8}")
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    next_change = started + 60
    next_sample = started + SAMPLE_EVERY
    changed = 0
    lag_p99 = 0.0
    lag_at_warmup: list[tuple[float, float]] | None = None
    try:
        while time.monotonic() - started < total:
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited early ({daemon.returncode}); see {work}")
            now = time.monotonic()
            if now >= next_change:
                changed += farm.change()
                next_change += 60
            if now >= next_sample:
                next_sample += SAMPLE_EVERY
                elapsed = now - started
                rss, fds = rss_kib(daemon.pid), open_fds(daemon.pid)
                samples.append((elapsed, rss, fds))
                try:
                    metrics = scrape(http_port)
                    buckets = histogram(metrics, "wirewatch_scheduler_lag_seconds")
                    if lag_at_warmup is None and elapsed >= warmup:
                        lag_at_warmup = buckets
                    lag_p99 = quantile_upper_bound(buckets, 0.99)
                    depth = int(gauge(metrics, "wirewatch_outbox_depth"))
                except OSError:
                    depth = -1
                print(f"{elapsed:6.0f} {rss / 1024:9.1f} {fds:5d} {depth:7d} {lag_p99:10.2f} "
                      f"{changed:8d}", flush=True)
            time.sleep(0.2)
        # Let the last changes be polled (one interval) and delivered.
        drain_until = time.monotonic() + 90
        while time.monotonic() < drain_until:
            metrics = scrape(http_port)
            polled = _matching_seen(db)
            if polled >= farm.matching_published and gauge(metrics,
                                                           "wirewatch_outbox_depth") == 0:
                break
            time.sleep(2)
        metrics = scrape(http_port)
        lag_buckets = histogram(metrics, "wirewatch_scheduler_lag_seconds")
        lag_p99 = quantile_upper_bound(lag_buckets, 0.99)
        lag_p50 = quantile_upper_bound(lag_buckets, 0.50)
        # After warm-up only: the first two rounds poll all 500 feeds at once.
        since = lag_at_warmup or [(le, 0.0) for le, _ in lag_buckets]
        steady = [(le, count - before) for (le, count), (_, before)
                  in zip(lag_buckets, since, strict=True)]
        lag_p99_steady = quantile_upper_bound(steady, 0.99)
        daemon.send_signal(signal.SIGTERM)
        exit_code = daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        out.close()
        err.close()
        server.shutdown()

    after = [s for s in samples if s[0] >= warmup]
    base_rss = after[0][1] if after else 0
    max_rss = max((s[1] for s in after), default=0)
    growth = (max_rss - base_rss) / base_rss * 100 if base_rss else 0.0
    fds_after = [s[2] for s in after] or [0]
    # Sockets to the feed server come and go with each poll burst, so one sample
    # says little; a leak shows as the peaks rising: compare the first and last
    # thirds of the run after warm-up.
    third = max(1, len(fds_after) // 3)
    fds_peak_first, fds_peak_last = max(fds_after[:third]), max(fds_after[-third:])
    hits, delivered, undelivered = _deliveries(db)
    figures = {
        "minutes": args.minutes,
        "feeds": FEEDS,
        "rules": RULES,
        "feeds_changed_total": changed,
        "matching_items_published": farm.matching_published,
        "hits_stored": hits,
        "hits_delivered": delivered,
        "deliveries_not_sent": undelivered,
        "rss_start_mib": round(samples[0][1] / 1024, 1) if samples else 0,
        "rss_after_warmup_mib": round(base_rss / 1024, 1),
        "rss_max_after_warmup_mib": round(max_rss / 1024, 1),
        "rss_growth_after_warmup_pct": round(growth, 2),
        "fds_min_after_warmup": min(fds_after),
        "fds_max_after_warmup": max(fds_after),
        "fds_peak_first_third": fds_peak_first,
        "fds_peak_last_third": fds_peak_last,
        "scheduler_lag_p50_le_s": lag_p50,
        "scheduler_lag_p99_le_s": lag_p99,
        "scheduler_lag_p99_after_warmup_le_s": lag_p99_steady,
        "polls_after_warmup": steady[-1][1] if steady else 0,
        "exit_code": exit_code,
    }
    passed = (growth < 10 and fds_peak_last <= fds_peak_first + 5 and lag_p99_steady < 2
              and undelivered == 0 and hits == farm.matching_published == delivered
              and exit_code == 0)
    figures["passed"] = passed
    print(f"RSS {figures['rss_after_warmup_mib']} -> {figures['rss_max_after_warmup_mib']} MiB "
          f"({growth:+.1f}%), fds {min(fds_after)}..{max(fds_after)} (peaks {fds_peak_first} -> "
          f"{fds_peak_last}), lag p99 <= {lag_p99}s "
          f"(after warm-up <= {lag_p99_steady}s), "
          f"hits {hits}/{farm.matching_published} published, {delivered} delivered, "
          f"exit {exit_code}: {'PASS' if passed else 'FAIL'}")
    print(json.dumps(figures))
    return 0 if passed else 1


def _matching_seen(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        return int(connection.execute("SELECT count(*) FROM hits").fetchone()[0])


# A hit is delivered when its own alert was sent, or when its item joined a story
# whose alert for the same rule was sent (one alert per story, by design).
_DELIVERED = """
SELECT count(*) FROM hits h WHERE
  EXISTS (SELECT 1 FROM deliveries d WHERE d.hit_id = h.id AND d.status = 'sent')
  OR EXISTS (SELECT 1 FROM story_items si
             JOIN story_alerts sa ON sa.story_id = si.story_id AND sa.rule = h.rule
             JOIN deliveries d ON d.hit_id = sa.hit_id AND d.status = 'sent'
             WHERE si.item_id = h.item_id)
"""


def _deliveries(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        hits = int(connection.execute("SELECT count(*) FROM hits").fetchone()[0])
        try:
            sent = int(connection.execute(_DELIVERED).fetchone()[0])
        except sqlite3.OperationalError:  # a build without stories
            sent = int(connection.execute(
                "SELECT count(DISTINCT hit_id) FROM deliveries WHERE status = 'sent'"
            ).fetchone()[0])
        other = int(connection.execute(
            "SELECT count(*) FROM deliveries WHERE status != 'sent'").fetchone()[0])
    return hits, sent, other


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
