"""Polling throughput: one full cycle over a feed farm on loopback.

    python -m bench polling [--feeds 5000] [--parser process|thread|both] [--workers 2]

The farm is an asyncio HTTP/1.1 server in a separate process, listening on
``--ports`` ports of 127.0.0.1 (per-host limits apply per origin, so the farm
looks like many small hosts). Of the feeds:

- 80% answer 304 Not Modified to the ETag the store already holds;
- 10% send the same full corpus body again, without validators (the body hash
  must spare the parse);
- 10% send a changed body with 20 new items (titles, links and summaries taken
  from the real feeds in ``../shared/corpus/feeds``, fresh guids per request).

The store is a real SQLite file, primed as after earlier cycles (validators and
body hashes in place). The poller is the production ``Poller`` with the real
rule engine (a few dozen rules). Then:

- ``cycle``: every feed polled once (wall time, CPU of this process and of the
  parse workers, new items stored);
- ``304 only``: a cycle over the 304 feeds alone, for the CPU cost of one 304 poll.

With ``--parser both`` the thread parser runs first as the baseline.
Figures are from a 2-core machine shared with other work; the farm process
competes with the poller for those cores.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import html
import json
import multiprocessing
import os
import random
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import col

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"

# ----------------------------------------------------------------------------- farm


def _kind(index: int) -> str:
    bucket = index % 10
    return "changed" if bucket == 0 else "unchanged" if bucket == 1 else "304"


def etag_of(index: int) -> str:
    return f'"e{index}"'


def _rss(items: list[tuple[str, str, str]], feed: int, serial: int) -> bytes:
    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
             f"<title>Farm feed {feed}</title><link>http://127.0.0.1/{feed}</link>"]
    for number, (title, link, summary) in enumerate(items):
        parts.append(
            f"<item><title>{html.escape(title)}</title><link>{html.escape(link)}</link>"
            f"<guid isPermaLink=\"false\">farm-{feed}-{serial}-{number}</guid>"
            f"<description>{html.escape(summary)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


class Farm:
    """Serves the feeds; runs in its own process."""

    def __init__(self, *, bodies: list[bytes], pool: list[tuple[str, str, str]],
                 feeds: int) -> None:
        self.bodies = bodies
        self.pool = pool
        self.feeds = feeds
        self.serial = [0] * feeds
        self.small = _rss(pool[:3], 0, 0)

    def answer(self, path: str, headers: dict[str, str]) -> bytes:
        try:
            index = int(path.rsplit("/", 1)[-1])
        except ValueError:
            return _response(404, b"no such feed", {})
        kind = _kind(index)
        if kind == "304":
            if headers.get("if-none-match") == etag_of(index):
                return _response(304, b"", {"ETag": etag_of(index)})
            return _response(200, self.small, {"ETag": etag_of(index)})
        if kind == "unchanged":
            return _response(200, self.bodies[index % len(self.bodies)], {})
        self.serial[index] += 1
        start = (index * 7 + self.serial[index] * 20) % (len(self.pool) - 20)
        body = _rss(self.pool[start:start + 20], index, self.serial[index])
        return _response(200, body, {})

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    if value:
                        headers[key.strip().lower()] = value.strip()
                writer.write(self.answer(path, headers))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/rss+xml",
             *(f"{k}: {v}" for k, v in headers.items())]
    if status != 304:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _run_farm(ports: int, feeds: int, ready: Any, stop: Any) -> None:
    bodies, pool = corpus_material()

    async def main() -> None:
        farm = Farm(bodies=bodies, pool=pool, feeds=feeds)
        servers = [await asyncio.start_server(farm.serve, "127.0.0.1", 0, backlog=1024)
                   for _ in range(ports)]
        ready.send([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    asyncio.run(main())


def corpus_material() -> tuple[list[bytes], list[tuple[str, str, str]]]:
    """Full corpus bodies (for unchanged 200s) and a pool of real items."""
    from monitor.parse import FeedParseError, parse_feed

    bodies: list[bytes] = []
    pool: list[tuple[str, str, str]] = []
    for path in sorted(CORPUS.iterdir()):
        if path.name == "MANIFEST.tsv":
            continue
        data = path.read_bytes()
        try:
            parsed = parse_feed(data, url=f"https://{path.name}.example/feed")
        except FeedParseError:
            continue
        if parsed.items:
            bodies.append(data)
        for item in parsed.items:
            if item.title and item.link:
                pool.append((item.title, item.link, (item.summary or item.content)[:600]))
    random.Random(7).shuffle(pool)
    return bodies, pool


# ----------------------------------------------------------------------------- poller side


RULES = [
    "election AND (fraud OR rigged)", "earthquake OR tsunami", '"prime minister" AND resign*',
    "sanctions AND (Russia OR Iran)", "ceasefire", "budget AND parliament", "strike* AND union",
    "wildfire OR flood*", "court AND ruling", "coup", "protest* NEAR/5 police", "inflation",
    "hostage*", "refugee* AND border", "(bank OR banks) AND collapse", "vaccine", "drone*",
    "oil AND price*", "AI AND regulation", "cyberattack OR hack*",
]


def build_poller(store: Any, ports: list[int], feeds: int, parser: Any) -> tuple[Any, Any, Any]:
    from monitor.config import load_config
    from monitor.fetch import make_client
    from monitor.pipeline import Poller
    from monitor.plan import FeedPlan, plan_from_config

    text = ['database: "sqlite:///:memory:"', "feeds:", "  - name: seed",
            "    url: http://127.0.0.1/seed", "rules:"]
    for number, query in enumerate(RULES):
        text += [f"  - name: r{number}", f"    query: '{query}'"]
    config = load_config("\n".join(text) + "\n", source="bench", environ={})
    base = plan_from_config(config)
    seed = base.feeds["seed"]
    plans = {}
    for index in range(feeds):
        url = f"http://127.0.0.1:{ports[index % len(ports)]}/feed/{index}"
        plans[f"f{index:05d}"] = dataclasses.replace(seed, name=f"f{index:05d}", url=url)
    plan = dataclasses.replace(base, feeds=plans)
    client = make_client(max_connections=plan.concurrency)
    poller = Poller(store=store, client=client, plan=plan, parser=parser)
    return poller, client, FeedPlan


def prime(store: Any, bodies: list[bytes], feeds: int) -> None:
    """Set the state earlier cycles would have left: ETags, body hashes."""
    from monitor.store import FeedRow

    with store.engine.begin() as connection:
        for index in range(feeds):
            kind = _kind(index)
            values: dict[str, Any] = {}
            if kind == "304":
                values["etag"] = etag_of(index)
            elif kind == "unchanged":
                values["body_hash"] = hashlib.sha256(bodies[index % len(bodies)]).hexdigest()
            if values:
                connection.execute(update(FeedRow).where(col(FeedRow.name) == f"f{index:05d}")
                                   .values(**values))


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def run_cycle(poller: Any, feeds: list[str] | None = None) -> dict[str, Any]:
    from monitor.plan import Plan

    plan: Plan = poller.plan
    if feeds is not None:
        poller.replace_plan(dataclasses.replace(
            plan, feeds={name: plan.feeds[name] for name in feeds}))
    lag = LoopLag()
    lag.start()
    parse_before = poller.parser.cpu_seconds
    cpu_before, wall_before = cpu(), time.perf_counter()
    summary = await poller.poll_due(force=True)
    wall = time.perf_counter() - wall_before
    main_cpu = cpu() - cpu_before
    await lag.stop()
    poller.replace_plan(plan)
    statuses: dict[str, int] = {}
    for outcome in summary.outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    return dict(wall=wall, main_cpu=main_cpu, parse_cpu=poller.parser.cpu_seconds - parse_before,
                polled=len(summary.outcomes), new_items=summary.new_items, hits=summary.hits,
                statuses=statuses, errors=[o.error for o in summary.errors][:3],
                max_loop_lag_ms=lag.worst * 1000)


class LoopLag:
    """How late a 10 ms timer fires: the event loop's responsiveness."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def probe() -> None:
            while True:
                started = time.perf_counter()
                await asyncio.sleep(0.01)
                self.worst = max(self.worst, time.perf_counter() - started - 0.01)

        self._task = asyncio.create_task(probe())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def measure(kind: str, args: argparse.Namespace, ports: list[int],
                  bodies: list[bytes]) -> dict[str, Any]:
    from monitor.parsepool import ProcessParser, ThreadParser
    from monitor.store import FeedSpec, Store, utcnow

    parser: Any = ProcessParser(workers=args.workers) if kind == "process" else ThreadParser()
    with tempfile.TemporaryDirectory() as directory:
        store = Store.open(f"sqlite:///{directory}/bench.db")
        now = utcnow()
        names = [f"f{index:05d}" for index in range(args.feeds)]
        poller, client, _ = build_poller(store, ports, args.feeds, parser)
        store.sync_feeds([FeedSpec(name=n, url=poller.plan.feeds[n].url) for n in names],
                         now=now - timedelta(minutes=1))
        prime(store, bodies, args.feeds)
        if kind == "process":  # start the workers outside the timed cycle
            await parser.parse(b"<rss version='2.0'><channel><title>x</title></channel></rss>",
                               url="http://127.0.0.1/warm", content_type=None)
        try:
            cycle = await run_cycle(poller)
            only_304 = [n for i, n in enumerate(names) if _kind(i) == "304"]
            just_304 = await run_cycle(poller, only_304)
        finally:
            await client.aclose()
            parser.close()
            store.close()
    return dict(parser=kind, cycle=cycle, just_304=just_304,
                rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                worker_rss_mb=getattr(parser, "worker_peak_rss_kib", 0) / 1024)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench polling")
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--ports", type=int, default=200)
    parser.add_argument("--parser", choices=["process", "thread", "both"], default="process")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    stop = context.Event()
    farm = context.Process(target=_run_farm, args=(args.ports, args.feeds, send, stop),
                           daemon=True)
    farm.start()
    ports = receive.recv()
    bodies, _ = corpus_material()
    kinds = ["thread", "process"] if args.parser == "both" else [args.parser]
    results = []
    try:
        for kind in kinds:
            results.append(asyncio.run(measure(kind, args, ports, bodies)))
    finally:
        stop.set()
        farm.join(10)

    print(f"polling benchmark: {args.feeds} feeds on {args.ports} loopback ports "
          f"(80% 304, 10% unchanged 200, 10% changed with 20 new items); "
          f"{os.cpu_count()} cores, shared with the farm process")
    header = (f"{'parser':8} {'pass':10} {'polled':>7} {'wall s':>7} {'cpu s':>7} "
              f"{'parse cpu s':>11} {'new items':>9} {'cpu ms/poll':>11} {'loop lag ms':>11}")
    print(header)
    print("-" * len(header))
    for result in results:
        for name in ("cycle", "just_304"):
            row = result[name]
            per_poll = (row["main_cpu"] + (row["parse_cpu"] if result["parser"] == "process"
                                           else 0)) / max(row["polled"], 1) * 1000
            print(f"{result['parser']:8} {name:10} {row['polled']:>7} {row['wall']:>7.1f} "
                  f"{row['main_cpu']:>7.1f} {row['parse_cpu']:>11.1f} {row['new_items']:>9} "
                  f"{per_poll:>11.2f} {row['max_loop_lag_ms']:>11.0f}")
        print(f"{result['parser']:8} statuses {result['cycle']['statuses']} "
              f"errors {result['cycle']['errors']}; peak RSS {result['rss_mb']:.0f} MB "
              f"(parse workers {result['worker_rss_mb']:.0f} MB each at most)")
    final = results[-1]
    cycle = final["cycle"]
    total_cpu = cycle["main_cpu"] + (cycle["parse_cpu"] if final["parser"] == "process" else 0)
    figures: dict[str, Any] = {
        "feeds": args.feeds,
        "parser": final["parser"],
        "cycle_s": round(cycle["wall"], 2),
        "cpu_ms_per_304": round(final["just_304"]["main_cpu"]
                                / max(final["just_304"]["polled"], 1) * 1000, 3),
        "parse_cpu_share": round(cycle["parse_cpu"] / total_cpu, 3) if total_cpu else 0.0,
        "rss_mb": round(final["rss_mb"], 1),
        "worker_rss_mb": round(final["worker_rss_mb"], 1),
        "cycle_cpu_s": round(total_cpu, 2),
        "new_items": cycle["new_items"],
        "max_loop_lag_ms": round(cycle["max_loop_lag_ms"], 1),
        "cores": os.cpu_count(),
    }
    if len(results) == 2:
        base = results[0]["cycle"]
        figures["baseline_thread_cycle_s"] = round(base["wall"], 2)
        figures["baseline_thread_parse_cpu_share"] = round(
            base["parse_cpu"] / base["main_cpu"], 3) if base["main_cpu"] else 0.0
    print(json.dumps(figures))
    return 0
