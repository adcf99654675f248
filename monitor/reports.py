"""``wirewatch hits`` and ``wirewatch stats``: what the store holds, for operators.

Tables (rich) for people, ``--format json`` for scripts. The JSON field names
are a documented, stable contract (docs/cli.md): add fields, never rename.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.durations import DURATION_HINT, MAX_DURATION, DurationError, parse_duration
from monitor.store import Store, utcnow


class _Context(Protocol):
    stdout: TextIO

    def open_report_store(self) -> Store: ...


class UsageError(Exception):
    """A bad option value; the message says what was expected."""


def parse_since(text: str, *, now: datetime) -> datetime:
    """``24h`` / ``7d`` (that long ago) or an ISO date/time (UTC unless it says)."""
    try:
        return now - parse_duration(text)
    except DurationError as exc:
        refused = exc
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        if str(refused) != DURATION_HINT:  # written as a duration, but too long or zero
            raise UsageError(f"--since: {refused}") from None
        raise UsageError(f"--since: expected a duration like 24h or 7d, or an ISO date like "
                         f"2026-03-01, got {text!r}") from None
    try:
        # In UTC here, not in the query: 9999-12-31T23:00-05:00 is past the last date
        # a datetime holds, and the database driver would fail on it with a traceback.
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        raise UsageError(f"--since: {text!r} is outside the dates wirewatch can handle "
                         "(years 1 to 9999 in UTC)") from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# ----------------------------------------------------------------------------- hits


def hit_json(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "created_at": _iso(record["created_at"]),
        "rule": record["rule"],
        "severity": record["severity"],
        "feed": record["feed"],
        "title": record["title"],
        "link": record["link"],
        "item_key": record["item_key"],
        "published_at": _iso(record["published_at"]),
        "deliveries": dict(sorted(record["deliveries"].items())),
    }


def hits_table(records: list[dict[str, Any]], *, since: datetime) -> Table:
    table = Table(title=f"hits since {_iso(since)}: {len(records)}", title_justify="left")
    for column in ("WHEN", "RULE", "FEED", "TITLE", "DELIVERIES"):
        table.add_column(column, overflow="fold")
    for r in records:
        deliveries = ", ".join(f"{n}:{s}" for n, s in sorted(r["deliveries"].items())) or "-"
        # Text, not str: rich would read "[b]" or a stray "[/b]" in a feed's title
        # as markup (and fail on the latter).
        table.add_row(r["created_at"], *(Text(r[key]) for key in ("rule", "feed", "title")),
                      Text(deliveries))
    return table


def cmd_hits(args: argparse.Namespace, ctx: _Context) -> int:
    since = parse_since(args.since, now=utcnow())
    store = ctx.open_report_store()
    try:
        records = [hit_json(r) for r in store.hit_records(since=since, rule=args.rule,
                                                          limit=args.limit)]
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(records, indent=2, ensure_ascii=False), file=ctx.stdout)
    else:
        _console(ctx.stdout).print(hits_table(records, since=since))
    return 0


# ----------------------------------------------------------------------------- stats

DELIVERY_STATUSES = ("sent", "pending", "sending", "held", "failed")


def stats_json(store: Store, *, since: datetime, now: datetime) -> dict[str, Any]:
    days = store.daily_counts(since=since)
    rows: list[dict[str, object]] = []
    totals_deliveries: dict[str, int] = {}
    for day, counts in days.items():
        deliveries = {k.removeprefix("deliveries_"): v for k, v in counts.items()
                      if k.startswith("deliveries_")}
        rows.append({"day": day, "items": counts.get("items", 0), "hits": counts.get("hits", 0),
                     "deliveries": dict(sorted(deliveries.items()))})
        for status, count in deliveries.items():
            totals_deliveries[status] = totals_deliveries.get(status, 0) + count
    feeds = store.feeds()
    return {
        "since": _iso(since),
        "until": _iso(now),
        "totals": {
            "items": sum(counts.get("items", 0) for counts in days.values()),
            "hits": sum(counts.get("hits", 0) for counts in days.values()),
            "deliveries": dict(sorted(totals_deliveries.items())),
        },
        "feeds": {"enabled": sum(1 for f in feeds if f.enabled),
                  "failing": store.failing_feeds(), "total": len(feeds)},
        "outbox_depth": store.outbox_depth(),
        "days": rows,
    }


def stats_table(stats: dict[str, Any]) -> Table:
    statuses = [s for s in DELIVERY_STATUSES if s in stats["totals"]["deliveries"]]
    statuses += sorted(set(stats["totals"]["deliveries"]) - set(statuses))
    feeds = stats["feeds"]
    table = Table(
        title=(f"since {stats['since']}; feeds {feeds['enabled']} enabled, {feeds['failing']} "
               f"failing; outbox {stats['outbox_depth']}"),
        title_justify="left", show_footer=True)
    table.add_column("DAY", footer="total")
    table.add_column("ITEMS", justify="right", footer=str(stats["totals"]["items"]))
    table.add_column("HITS", justify="right", footer=str(stats["totals"]["hits"]))
    for status in statuses:
        table.add_column(status.upper(), justify="right",
                         footer=str(stats["totals"]["deliveries"].get(status, 0)))
    for row in stats["days"]:
        table.add_row(row["day"], str(row["items"]), str(row["hits"]),
                      *(str(row["deliveries"].get(s, 0)) for s in statuses))
    return table


def cmd_stats(args: argparse.Namespace, ctx: _Context) -> int:
    now = utcnow()
    since = datetime.combine(date.fromordinal(now.date().toordinal() - (args.days - 1)),
                             datetime.min.time(), tzinfo=UTC)
    store = ctx.open_report_store()
    try:
        stats = stats_json(store, since=since, now=now)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(stats, indent=2, ensure_ascii=False), file=ctx.stdout)
    else:
        _console(ctx.stdout).print(stats_table(stats))
    return 0


# ----------------------------------------------------------------------------- wiring


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 here, from inside the table; the command's caller
        # answers a closed pipe the same way for every command (cli.EXIT_PIPE).
        self.quiet = True
        raise BrokenPipeError


def _console(stream: TextIO) -> Console:
    # Off a terminal (a pipe, a file) rich keeps the table but drops colour;
    # a fixed width keeps long titles from wrapping at rich's 80-column default.
    return _Console(file=stream, width=None if stream.isatty() else 200)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    # Past a 64-bit integer the database driver fails on it (an OverflowError).
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT}, got {value}")
    return value


#: The largest --limit: more rows than any store holds, well within SQL's 64 bits.
MAX_COUNT = 1_000_000_000


def _days(text: str) -> int:
    value = _positive(text)
    # More days than this reach back before year 1: a ValueError out of date.fromordinal.
    if value > MAX_DURATION.days:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DURATION.days}, got {value}")
    return value


def _since(text: str) -> str:
    try:
        parse_since(text, now=utcnow())
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--since: ")) from None
    return text


def add_report_commands(commands: Any) -> None:
    hits = commands.add_parser("hits", help="list recent hits with their delivery status")
    hits.add_argument("--rule", metavar="NAME", help="only this rule's hits")
    hits.add_argument("--since", default="24h", type=_since, metavar="WHEN",
                      help="how far back: a duration (24h, 7d) or an ISO date (default 24h)")
    hits.add_argument("--limit", default=1000, type=_positive, metavar="N",
                      help="at most N hits, newest first (default 1000)")
    hits.add_argument("--format", choices=["table", "json"], default="table")
    hits.set_defaults(func=cmd_hits)

    stats = commands.add_parser("stats", help="items, hits and deliveries per day")
    stats.add_argument("--days", default=7, type=_days, metavar="N",
                       help="the last N days, today included (default 7)")
    stats.add_argument("--format", choices=["table", "json"], default="table")
    stats.set_defaults(func=cmd_stats)


__all__ = ["add_report_commands", "parse_since"]
