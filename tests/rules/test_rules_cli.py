"""`wirewatch rules test` and `rules backtest`: exit codes, output, streaming over stored items."""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from monitor.rules_cli import add_rules_commands, backtest
from monitor.store import StoredItem
from rules import RuleSpec, compile_rules

BODY = "Pashinyan expressed his intentions to withdraw from the CSTO, officials said."


@dataclass
class FakeContext:
    config: Any = None
    store: Any = None
    stdin: io.StringIO = field(default_factory=io.StringIO)
    stdout: io.StringIO = field(default_factory=io.StringIO)
    stderr: io.StringIO = field(default_factory=io.StringIO)

    def load_config(self) -> Any:
        return self.config

    def open_store(self) -> Any:
        return self.store


def run(argv: list[str], ctx: FakeContext) -> int:
    parser = argparse.ArgumentParser(prog="wirewatch")
    add_rules_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args, ctx))


def test_rules_test_match_prints_marked_snippet(tmp_path: Path) -> None:
    body = tmp_path / "item.txt"
    body.write_text(BODY, encoding="utf-8")
    ctx = FakeContext()
    assert run(["rules", "test", "CSTO AND withdraw*", "--file", str(body)], ctx) == 0
    out = ctx.stdout.getvalue()
    assert out.startswith("MATCH\n")
    assert "**withdraw** from the **CSTO**" in out


def test_rules_test_reads_stdin_and_title() -> None:
    ctx = FakeContext(stdin=io.StringIO(BODY))
    assert (
        run(["rules", "test", "title:Armenia AND CSTO", "--title", "Armenia", "--file", "-"], ctx)
        == 0
    )
    ctx = FakeContext(stdin=io.StringIO(BODY))
    assert run(["rules", "test", "title:Armenia AND CSTO", "--file", "-"], ctx) == 1
    assert ctx.stdout.getvalue() == "NO MATCH\n"


def test_rules_test_invalid_query_exits_2_with_caret() -> None:
    ctx = FakeContext()
    assert run(["rules", "test", "CSTO AND", "--title", "x"], ctx) == 2
    assert ctx.stderr.getvalue() == (
        "rule 'query': expected a term after AND\n  CSTO AND\n          ^\n"
    )
    assert ctx.stdout.getvalue() == ""


def test_rules_test_uses_the_config_lists() -> None:
    ctx = FakeContext(config=SimpleNamespace(lists={"csto": ["CSTO", "ОДКБ"]}))
    assert run(["rules", "test", "@csto", "--title", "выход из ОДКБ"], ctx) == 0


NOW = datetime(2026, 2, 18, 12, 0, tzinfo=UTC)


def stored(
    i: int,
    title: str,
    *,
    feed: str = "BBC World",
    tags: tuple[str, ...] = ("world",),
    days_ago: int = 0,
) -> StoredItem:
    return StoredItem(
        id=i,
        feed_name=feed,
        feed_tags=tags,
        item_key=f"k{i}",
        guid=None,
        link=f"https://example.org/{i}",
        title=title,
        summary="",
        content=BODY if i % 2 else "",
        author="",
        categories=(),
        published_at=None,
        first_seen_at=NOW - timedelta(days=days_ago, minutes=i),
    )


def test_backtest_counts_per_day_and_keeps_recent_examples() -> None:
    items = [stored(i, f"Armenia story {i}", days_ago=i % 3) for i in range(1, 31)]
    ruleset = compile_rules([RuleSpec("r", "CSTO")])
    result = backtest(ruleset, items, examples=3)
    assert result.items == 30
    assert result.fired == 15  # odd ids carry the body
    assert sum(result.per_day.values()) == 15 and len(result.per_day) == 3
    assert len(result.examples) == 3
    whens = [e.when for e in result.examples]
    assert whens == sorted(whens, reverse=True)


def test_backtest_honours_the_rule_feed_scope() -> None:
    items = [
        stored(1, "CSTO", feed="A", tags=("armenia",)),
        stored(3, "CSTO", feed="B"),
        stored(5, "CSTO", feed="C"),
    ]
    ruleset = compile_rules([RuleSpec("r", "CSTO")])
    assert backtest(ruleset, items, feeds=["B", "tag:armenia"]).fired == 2


class FakeStore:
    def __init__(self, items: list[StoredItem]) -> None:
        self.items = items
        self.since: datetime | None = None

    def iter_items(self, *, since: datetime, feed_tags: Any = None) -> Iterator[StoredItem]:
        self.since = since
        return iter(self.items)


def test_backtest_command_by_rule_name() -> None:
    config = SimpleNamespace(
        rules=[SimpleNamespace(name="csto", query="CSTO AND withdraw*", feeds=None)],
        lists={},
        feeds=[SimpleNamespace(name="BBC World", tags=["world"])],
    )
    store = FakeStore([stored(i, f"story {i}") for i in range(1, 11)])
    ctx = FakeContext(config=config, store=store)
    assert run(["rules", "backtest", "csto", "--since", "2d"], ctx) == 0
    out = ctx.stdout.getvalue()
    assert out.startswith("rule 'csto': 5 of 10 items since")
    assert "most recent:" in out and "**CSTO**" in out
    assert store.since is not None
    assert abs((datetime.now(UTC) - store.since) - timedelta(days=2)) < timedelta(minutes=1)


def test_backtest_command_invalid_query_exits_2() -> None:
    config = SimpleNamespace(rules=[], lists={}, feeds=[])
    ctx = FakeContext(config=config, store=FakeStore([]))
    assert run(["rules", "backtest", "(CSTO"], ctx) == 2
    assert "unbalanced parenthesis opened at column 1" in ctx.stderr.getvalue()


@pytest.mark.timeout(120)
def test_backtest_streams_100k_items_quickly() -> None:
    """The issue's bound: 100,000 stored items in under 30 s (generated lazily here)."""
    ruleset = compile_rules([RuleSpec("r", '"withdraw from" AND (CSTO OR NATO) NOT sport')])

    def items() -> Iterator[StoredItem]:
        for i in range(100_000):
            yield stored(i, f"Headline number {i} about Armenia", days_ago=i % 7)

    started = time.perf_counter()
    result = backtest(ruleset, items())
    elapsed = time.perf_counter() - started
    assert result.items == 100_000 and result.fired == 50_000
    assert elapsed < 30, f"backtest took {elapsed:.1f}s"
