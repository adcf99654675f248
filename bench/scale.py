"""Scale-out: one polling cycle over 20,000 feeds by 1, 2 and 4 instances on one PostgreSQL.

    python -m bench scale [--feeds 20000] [--instances 1,2,4] [--database-url URL]
                          [--explain-sizes 2000,20000,200000]

The database server is ``--database-url`` (default: ``$WIREWATCH_TEST_DATABASE_URL``,
else ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); a fresh
``wirewatch_bench_*`` database is created on it and dropped after.

The farm is an asyncio HTTP/1.1 server in its own process on ``--ports`` ports
of 127.0.0.1 (per-host limits apply per origin, so it looks like many hosts).
95 % of the feeds answer 304 to the ETag the store holds; 5 % send one new
item on every request (the "mostly 304" of a newsroom's feed list).

For each instance count, every feed is made due, then that many instance
processes (each the production ``Poller`` with its own engine, claiming with
leases through ``Store.claim_due_feeds``) poll until nothing is left to claim:

- ``cycle``: wall time until every feed was polled once, and polls per second;
- ``queries/poll``: SQL statements the instances sent (SQLAlchemy
  ``before_cursor_execute``; an executemany counts once), per feed polled;
- ``claim ms``: mean time of one claim statement, seen from the client;
- ``double polls``: feeds polled more than once in the cycle (must be 0).

Then the claim statement itself (captured from the store, not retyped) runs
under ``EXPLAIN ANALYZE`` on tables of ``--explain-sizes`` feeds with 1 % due,
with the index on ``next_poll_at`` and, as the baseline, without it.

Figures are from a 2-core machine shared with other work; the farm, the
instances and PostgreSQL all compete for those cores. Prints tables, then one
JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHANGING_EVERY = 20  # 5 % of the feeds publish on every request


# ----------------------------------------------------------------------------- farm


def _etag(index: int) -> str:
    return f'"e{index}"'


def _answer(path: str, headers: dict[str, str], serial: Counter[int]) -> bytes:
    index = int(path.rsplit("/", 1)[-1])
    if index % CHANGING_EVERY:
        if headers.get("if-none-match") == _etag(index):
            return _response(304, b"", {"ETag": _etag(index)})
        body = b'<rss version="2.0"><channel><title>quiet</title></channel></rss>'
        return _response(200, body, {"ETag": _etag(index)})
    serial[index] += 1
    item = (f"<item><title>Item {serial[index]} of feed {index}</title>"
            f"<link>http://127.0.0.1/{index}/{serial[index]}</link>"
            f"<guid>{index}-{serial[index]}</guid></item>")
    body = f'<rss version="2.0"><channel><title>busy</title>{item}</channel></rss>'.encode()
    return _response(200, body, {})


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 304: "Not Modified"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/rss+xml",
             *(f"{k}: {v}" for k, v in headers.items()), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _run_farm(ports: int, ready: Any, stop: Any) -> None:
    serial: Counter[int] = Counter()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    if value:
                        headers[key.strip().lower()] = value.strip()
                writer.write(_answer(lines[0].split(" ")[1], headers, serial))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
                   for _ in range(ports)]
        ready.send([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    asyncio.run(main())


# ----------------------------------------------------------------------------- database


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"wirewatch_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_all_due(url: str, *, now: datetime) -> None:
    """Every feed due now, unleased, with the ETag the farm expects (as after a cycle)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "UPDATE feeds SET next_poll_at = :now, lease_owner = NULL, lease_until = NULL, "
            "last_polled_at = NULL, last_polled_by = NULL, "
            "etag = '\"e' || CAST(substr(name, 2) AS INTEGER) || '\"'"), {"now": now})
    engine.dispose()
    vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
    with vacuum.connect() as connection:
        connection.execute(text("VACUUM ANALYZE feeds"))
    vacuum.dispose()


# ----------------------------------------------------------------------------- instances


def build_plan(ports: list[int], feeds: int) -> Any:
    from monitor.config import load_config
    from monitor.plan import plan_from_config

    config = load_config(
        'database: "sqlite:///:memory:"\ndefaults:\n  interval: 1h\n'
        "feeds:\n  - name: seed\n    url: http://127.0.0.1/seed\n"
        "rules:\n  - name: items\n    query: item\n", source="bench", environ={})
    base = plan_from_config(config)
    seed = base.feeds["seed"]
    plans = {}
    for index in range(feeds):
        url = f"http://127.0.0.1:{ports[index % len(ports)]}/feed/{index}"
        plans[f"f{index:05d}"] = dataclasses.replace(seed, name=f"f{index:05d}", url=url)
    return dataclasses.replace(base, feeds=plans)


def _instance(url: str, ports: list[int], feeds: int, owner: str, go: Any,
              results: Any) -> None:
    from monitor.fetch import make_client
    from monitor.parsepool import ThreadParser
    from monitor.pipeline import Poller
    from monitor.store import Store

    plan = build_plan(ports, feeds)
    store = Store.open(url)
    stats: dict[str, Any] = dict(statements=0, claims=0, claim_seconds=0.0)
    kinds: Counter[str] = Counter()

    @event.listens_for(store.engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               many: bool) -> None:
        stats["statements"] += 1
        words = statement.split(None, 2)
        kinds[" ".join(words[:2]).lower()] += 1
        conn.info["started"] = time.perf_counter()

    @event.listens_for(store.engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              many: bool) -> None:
        if statement.startswith("UPDATE feeds SET lease_owner"):
            stats["claims"] += 1
            stats["claim_seconds"] += time.perf_counter() - conn.info["started"]

    async def run() -> int:
        client = make_client(max_connections=plan.concurrency)
        poller = Poller(store=store, client=client, plan=plan, parser=ThreadParser(),
                        instance_id=owner)
        poller.lease = timedelta(seconds=60)
        go.wait()
        polled = 0
        while True:
            summary = await poller.poll_due()
            polled += len(summary.outcomes)
            if not summary.outcomes:
                break
        await client.aclose()
        await poller.aclose()
        return polled

    stats["statements"] = 0
    kinds.clear()
    polled = asyncio.run(run())
    store.close()
    results.put(dict(owner=owner, polled=polled, kinds=dict(kinds), **stats))


def run_cycle(url: str, ports: list[int], feeds: int, instances: int) -> dict[str, Any]:
    make_all_due(url, now=datetime.now(UTC))
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results = context.Queue()
    processes = [context.Process(target=_instance,
                                 args=(url, ports, feeds, f"bench:{n}", go, results))
                 for n in range(instances)]
    for process in processes:
        process.start()
    time.sleep(2 + 1.5 * instances)  # config, plan and engine ready in every process
    started = time.perf_counter()
    go.set()
    reports = [results.get(timeout=900) for _ in processes]
    wall = time.perf_counter() - started
    for process in processes:
        process.join()
    engine = create_engine(url)
    with engine.connect() as connection:
        unpolled = connection.execute(text(
            "SELECT count(*) FROM feeds WHERE last_polled_at IS NULL")).scalar()
    engine.dispose()
    polled = sum(r["polled"] for r in reports)
    statements = sum(r["statements"] for r in reports)
    claims = sum(r["claims"] for r in reports)
    kinds: Counter[str] = Counter()
    for report in reports:
        kinds.update(report["kinds"])
    return dict(instances=instances, wall=wall, polled=polled, unpolled=unpolled,
                double_polls=polled - (feeds - (unpolled or 0)),
                per_instance=[r["polled"] for r in reports],
                queries_per_poll=statements / max(polled, 1), claims=claims,
                claim_ms=1000 * sum(r["claim_seconds"] for r in reports) / max(claims, 1),
                kinds=dict(kinds.most_common(6)))


# ----------------------------------------------------------------------------- EXPLAIN


def claim_statement(url: str) -> tuple[str, dict[str, Any]]:
    """The claim SQL and parameters exactly as the store sends them."""
    from monitor.store import Store

    store = Store.open(url)
    seen: list[tuple[str, Any]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                many: bool) -> None:
        if statement.startswith("UPDATE feeds SET lease_owner"):
            seen.append((statement, params))

    store.claim_due_feeds(now=datetime(2000, 1, 1, tzinfo=UTC), lease=timedelta(seconds=60),
                          owner="explain", limit=100)
    store.close()
    return seen[0]


def explain(server_url: str, size: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of one claim over ``size`` feeds, 1 % due; with and without the index."""
    with fresh_database(server_url) as url:
        from monitor.store import Store

        Store.open(url).close()
        now = datetime.now(UTC)
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO feeds (name, url, enabled, next_poll_at, created_at, "
                "consecutive_failures, items_total, redirect_streak, gone) "
                "SELECT 'f' || n, 'http://127.0.0.1/' || n, true, "
                "CASE WHEN n % 100 = 0 THEN :now - interval '1 minute' "
                "ELSE :now + (n % 900) * interval '1 second' END, :now, 0, 0, 0, false "
                "FROM generate_series(1, :size) AS n"), {"now": now, "size": size})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE feeds"))
        statement, params = claim_statement(url)
        params = dict(params)
        for key, value in params.items():  # the captured claim ran in 2000: make it now
            if isinstance(value, datetime) and value.year == 2000:
                params[key] = now + (value - datetime(2000, 1, 1, tzinfo=UTC))
        out: dict[str, Any] = {"size": size}
        for label in ("index", "no_index"):
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                if label == "no_index":
                    cursor.execute("DROP INDEX ix_feeds_next_poll_at")
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                plan = [row[0] for row in cursor.fetchall()]
                raw.rollback()  # the claim and the dropped index are undone
            finally:
                raw.close()
            total = next(float(line.split(":")[1].split()[0]) for line in plan
                         if line.startswith("Execution Time"))
            out[label] = dict(ms=total, plan=plan)
        engine.dispose()
        return out


# ----------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--feeds", type=int, default=20_000)
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--ports", type=int, default=20)
    parser.add_argument("--explain-sizes", default="2000,20000,200000")
    parser.add_argument("--database-url",
                        default=os.environ.get("WIREWATCH_TEST_DATABASE_URL") or DEFAULT_SERVER)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.instances.split(",")]

    context = multiprocessing.get_context("spawn")
    ready_recv, ready_send = context.Pipe(duplex=False)
    stop = context.Event()
    farm = context.Process(target=_run_farm, args=(args.ports, ready_send, stop), daemon=True)
    farm.start()
    ports = ready_recv.recv()
    cycles = []
    try:
        with fresh_database(args.database_url) as url:
            from monitor.store import FeedSpec, Store

            store = Store.open(url)
            plan = build_plan(ports, args.feeds)
            store.sync_feeds([FeedSpec(name=f.name, url=f.url) for f in plan.feeds.values()],
                             now=datetime.now(UTC))
            store.close()
            for count in counts:
                cycles.append(run_cycle(url, ports, args.feeds, count))
    finally:
        stop.set()
        farm.join(timeout=5)

    print(f"scale: {args.feeds} loopback feeds ({100 // CHANGING_EVERY} % changing, the rest "
          "304), one PostgreSQL; 2 shared cores")
    print(f"{'instances':>9} {'cycle s':>8} {'polls/s':>8} {'queries/poll':>13} "
          f"{'claims':>7} {'claim ms':>9} {'double':>7}  polls per instance")
    for c in cycles:
        print(f"{c['instances']:>9} {c['wall']:>8.1f} {c['polled'] / c['wall']:>8.0f} "
              f"{c['queries_per_poll']:>13.3f} {c['claims']:>7} {c['claim_ms']:>9.2f} "
              f"{c['double_polls']:>7}  {c['per_instance']}")
    print("statements by kind (last run):", cycles[-1]["kinds"])

    explains = [explain(args.database_url, int(size)) for size in args.explain_sizes.split(",")]
    print("\nclaim statement, EXPLAIN ANALYZE, 1 % of the feeds due, window of 100:")
    print(f"{'feeds':>8} {'with index ms':>14} {'without ms':>11}")
    for e in explains:
        print(f"{e['size']:>8} {e['index']['ms']:>14.3f} {e['no_index']['ms']:>11.3f}")
    largest = explains[-1]
    print(f"\nplan with the index on next_poll_at, {largest['size']} feeds:")
    print("\n".join("  " + line for line in largest["index"]["plan"]))

    figures: dict[str, Any] = {"feeds": args.feeds}
    for c in cycles:
        n = c["instances"]
        figures[f"cycle_seconds_{n}_instances"] = round(c["wall"], 2)
        figures[f"polls_per_second_{n}_instances"] = round(c["polled"] / c["wall"], 1)
        figures[f"queries_per_poll_{n}_instances"] = round(c["queries_per_poll"], 4)
        figures[f"claim_ms_{n}_instances"] = round(c["claim_ms"], 3)
        figures[f"double_polls_{n}_instances"] = c["double_polls"]
    for e in explains:
        figures[f"claim_explain_ms_{e['size']}_feeds_index"] = e["index"]["ms"]
        figures[f"claim_explain_ms_{e['size']}_feeds_no_index"] = e["no_index"]["ms"]
    print(json.dumps(figures))
    return 0
