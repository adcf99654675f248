"""``wirewatch feeds``: each feed's state from the store, as a table or JSON.

The JSON field names are a documented, stable contract (docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, Protocol, TextIO

from monitor.store import FeedState, Store

FIELDS = (
    "name",
    "url",
    "effective_url",
    "status",
    "last_status",
    "last_error",
    "consecutive_failures",
    "last_success_at",
    "last_new_item_at",
    "next_poll_at",
    "items_total",
    "full_text_failures",
    "last_full_text_failure",
    "last_polled_by",
)


class _Context(Protocol):
    stdout: TextIO

    def open_report_store(self) -> Store: ...


def feed_record(
    state: FeedState, *, full_text_failures: tuple[int, str | None] = (0, None)
) -> dict[str, Any]:
    """One feed as `wirewatch feeds` shows it; ``full_text_failures`` is (items matched on
    feed text because the article text failed, the latest reason)."""

    def when(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    return {
        "name": state.name,
        "url": state.url,
        "effective_url": state.fetch_url,
        "status": state.status,
        "last_status": state.last_status,
        # A disabled feed shows why it is disabled: the error of a poll before it was
        # removed from the config would read as the reason.
        "last_error": (state.disabled_reason or state.last_error
                       if state.status == "disabled" else state.last_error),
        "consecutive_failures": state.consecutive_failures,
        "last_success_at": when(state.last_success_at),
        "last_new_item_at": when(state.last_new_item_at),
        # A disabled feed is never polled: the time it was last due would read as
        # a poll to come.
        "next_poll_at": when(state.next_poll_at) if state.enabled else None,
        "items_total": state.items_total,
        "full_text_failures": full_text_failures[0],
        "last_full_text_failure": full_text_failures[1],
        # Several instances can share the database: which one claimed the latest poll.
        "last_polled_by": state.last_polled_by,
    }


def render_table(records: list[dict[str, Any]]) -> str:
    columns = (
        "name",
        "status",
        "last_status",
        "consecutive_failures",
        "items_total",
        "last_success_at",
        "last_new_item_at",
        "next_poll_at",
        "effective_url",
        "last_polled_by",
        "last_error",
    )
    headers = ("FEED", "STATUS", "HTTP", "FAILS", "ITEMS", "LAST OK", "LAST NEW", "NEXT POLL",
               "POLLED URL", "POLLED BY", "LAST ERROR")
    rows = [[_cell(r[c]) for c in columns] for r in records]
    # A null next poll says why; "-" alone could read as "not scheduled yet".
    next_poll = columns.index("next_poll_at")
    for record, row in zip(records, rows, strict=True):
        if record["status"] == "disabled":
            row[next_poll] = "disabled"
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])  # the error column runs to the end of the line
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def cmd_feeds(args: argparse.Namespace, ctx: _Context) -> int:
    store = ctx.open_report_store()
    try:
        failures = store.full_text_failures()
        records = [
            feed_record(state, full_text_failures=failures.get(state.name, (0, None)))
            for state in store.feeds()
        ]
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(records, indent=2, ensure_ascii=False), file=ctx.stdout)
    else:
        print(render_table(records), file=ctx.stdout)
    return 0


def add_feeds_command(commands: Any) -> None:
    feeds = commands.add_parser("feeds", help="list each feed's state")
    feeds.add_argument("--format", choices=["table", "json"], default="table")
    feeds.set_defaults(func=cmd_feeds)
