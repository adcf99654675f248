"""``wirewatch rules backtest`` over a real database of 100,000 stored items.

    python -m bench backtest [--items 100000] [--days 7] [--database sqlite|URL]

The issue's bound: a backtest over 100,000 stored items finishes in under 30 s.
The items are news-like (``bench.rules.make_items``: a real feed's headline over
about 300 words of its summaries, from ``../shared/corpus/feeds``), spread over
``--days`` days across 50 feeds, written straight into a fresh store (SQLite in a
temporary folder by default, or the PostgreSQL URL given).  Then the command's
own code path runs: ``Store.iter_items`` streaming the rows, ``backtest`` matching
each one, the per-day counts and examples rendered.  Times are wall-clock (a
backtest is an editor waiting at a terminal) and CPU of this process.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bench.rules import make_items, read_corpus, rss_mb
from monitor.rules_cli import backtest, render_backtest
from monitor.store import FeedSpec, ItemRow, Store
from rules import RuleSpec, compile_rules

FEEDS = 50
BATCH = 5_000
# Queries of the shapes editors backtest: a name with its forms, a phrase, a
# wildcard with an exclusion, proximity.
QUERIES = (
    "(Ukraine OR Ukrainian) AND (ceasefire OR talks)",
    '"prime minister" AND (resign* OR election)',
    "tariff* NOT sport",
    "Trump NEAR/5 (Putin OR Zelensky)",
)


def fill(store: Store, count: int, days: int, seed: int) -> float:
    """Write ``count`` items into ``store``; returns the seconds it took."""
    rng = random.Random(seed)
    started = time.perf_counter()
    now = datetime.now(UTC)
    store.sync_feeds([FeedSpec(f"feed-{i}", f"http://127.0.0.1/feed/{i}") for i in range(FEEDS)],
                     now=now)
    feed_ids = [feed.id for feed in store.feeds()]
    documents = make_items(read_corpus(), 2_000, rng)
    span = timedelta(days=days).total_seconds()
    written = 0
    with store.engine.begin() as connection:
        while written < count:
            rows = []
            for i in range(written, min(count, written + BATCH)):
                doc = documents[i % len(documents)]
                rows.append({
                    "feed_id": feed_ids[i % FEEDS],
                    "item_key": f"item-{i}",
                    "link": f"http://127.0.0.1/story/{i}",
                    "title": doc.title,
                    "summary": doc.summary,
                    "content": doc.content,
                    "author": doc.author,
                    "categories": "[]",
                    # Oldest first, as a poller would have stored them.
                    "first_seen_at": now - timedelta(seconds=span * (1 - i / count)),
                })
            connection.execute(insert(ItemRow), rows)
            written += len(rows)
    return time.perf_counter() - started


def run(url: str | None, count: int, days: int, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="wirewatch-backtest-") as folder:
        store = Store.open(url or f"sqlite:///{Path(folder) / 'backtest.db'}")
        try:
            store.create_schema()
            fill_s = fill(store, count, days, seed)
            since = datetime.now(UTC) - timedelta(days=days + 1)
            results = []
            for query in QUERIES:
                ruleset = compile_rules([RuleSpec("query", query)])
                wall, cpu = time.perf_counter(), time.process_time()
                result = backtest(ruleset, store.iter_items(since=since))
                lines = list(render_backtest(result, label=f"query {query!r}", since=since))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results.append({
                    "query": query,
                    "items": result.items,
                    "fired": result.fired,
                    "days": len(result.per_day),
                    "backtest_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "items_per_s": round(result.items / wall),
                    "output_lines": len(lines),
                })
        finally:
            store.close()
    return {
        "benchmark": "backtest",
        "database": (url or "sqlite").split(":", 1)[0],
        "stored_items": count,
        "fill_s": round(fill_s, 1),
        "max_backtest_s": max(r["backtest_s"] for r in results),  # type: ignore[type-var]
        "target_s": 30,
        "rss_mb": round(rss_mb(), 1),
        "results": results,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench backtest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (a temporary file) or a database URL")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    url = None if args.database == "sqlite" else args.database
    report = run(url, args.items, args.days, args.seed)
    print(f"{report['stored_items']:,} stored items over {args.days} days "
          f"({report['database']}, written in {report['fill_s']} s)")
    print(f"{'query':<52} {'fired':>7} {'days':>5} {'wall s':>7} {'cpu s':>6} {'items/s':>8}")
    print("-" * 90)
    for r in report["results"]:  # type: ignore[attr-defined]
        print(f"{r['query']:<52} {r['fired']:>7} {r['days']:>5} {r['backtest_s']:>7} "
              f"{r['cpu_s']:>6} {r['items_per_s']:>8}")
    print(f"slowest backtest: {report['max_backtest_s']} s (bound: under 30 s)")
    print(json.dumps(report))
    return 0
