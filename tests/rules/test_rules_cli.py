"""`wirewatch rules test` and `rules backtest`: exit codes, output, streaming over stored items."""

from __future__ import annotations

import argparse
import dataclasses
import io
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert

from monitor.cli import main
from monitor.rules_cli import add_rules_commands, backtest
from monitor.store import FeedSpec, ItemRow, Store, StoredItem
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

    def open_report_store(self) -> Any:
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


@pytest.mark.parametrize(
    ("query", "options"),
    [
        ("summary:CSTO", ["--summary", "CSTO summit in Yerevan"]),
        ("author:smith", ["--author", "Jane Smith"]),
        ('category:"foreign policy"', ["--category", "Europe", "--category", "Foreign policy"]),
        ("feed:caucasus", ["--feed", "armenpress", "--feed", "caucasus"]),
        ("url:reuters.com", ["--url", "https://www.reuters.com/world/csto"]),
    ],
)
def test_rules_test_fills_every_field_a_query_can_scope_to(query: str,
                                                           options: list[str]) -> None:
    ctx = FakeContext()
    assert run(["rules", "test", query, *options], ctx) == 0, ctx.stderr.getvalue()
    assert ctx.stdout.getvalue().startswith("MATCH\n")
    # Without the field filled in, the same query finds nothing in the body.
    ctx = FakeContext(stdin=io.StringIO(" ".join(options)))
    assert run(["rules", "test", query, "--file", "-"], ctx) == 1


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


def test_rules_test_reads_the_config_lists_for_a_list_typed_in_full_width() -> None:
    ctx = FakeContext(config=SimpleNamespace(lists={"csto": ["CSTO", "ОДКБ"]}))
    assert run(["rules", "test", "＠ｃｓｔｏ", "--title", "выход из ОДКБ"], ctx) == 0


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


def stored_items_database(tmp_path: Path, items: list[StoredItem]) -> Store:
    """A real store holding ``items`` (rows written as the poller would have left them)."""
    store = Store.open(f"sqlite:///{tmp_path / 'items.db'}")
    store.create_schema()
    names = sorted({item.feed_name for item in items}) or ["BBC World"]
    store.sync_feeds([FeedSpec(n, f"http://127.0.0.1/{i}") for i, n in enumerate(names)],
                     now=NOW)
    feed_ids = {feed.name: feed.id for feed in store.feeds()}
    if items:
        with store.engine.begin() as connection:
            connection.execute(insert(ItemRow), [
                {"feed_id": feed_ids[item.feed_name], "item_key": item.item_key,
                 "link": item.link, "title": item.title, "summary": item.summary,
                 "content": item.content, "first_seen_at": item.first_seen_at}
                for item in items
            ])
    return store


def csto_config() -> SimpleNamespace:
    return SimpleNamespace(
        rules=[SimpleNamespace(name="csto", query="CSTO AND withdraw*", feeds=None)],
        lists={},
        feeds=[SimpleNamespace(name="BBC World", tags=["world"])],
    )


def recent(i: int, title: str) -> StoredItem:
    return dataclasses.replace(stored(i, title), first_seen_at=datetime.now(UTC)
                               - timedelta(hours=1, minutes=i))


def test_backtest_command_by_rule_name(tmp_path: Path) -> None:
    old = dataclasses.replace(stored(99, "CSTO"), first_seen_at=datetime.now(UTC)
                              - timedelta(days=3))
    store = stored_items_database(tmp_path, [recent(i, f"story {i}") for i in range(1, 11)]
                                  + [old])
    ctx = FakeContext(config=csto_config(), store=store)
    assert run(["rules", "backtest", "csto", "--since", "2d"], ctx) == 0
    out = ctx.stdout.getvalue()
    # The item older than --since is not counted.
    assert out.startswith("rule 'csto': 5 of 10 items since")
    assert "most recent:" in out and "**CSTO**" in out


def test_backtest_over_no_stored_items_says_to_check_the_database(tmp_path: Path) -> None:
    old = dataclasses.replace(stored(99, "CSTO"), first_seen_at=datetime.now(UTC)
                              - timedelta(days=3))
    for items, noted in (([old], True), ([old, recent(1, "CSTO story")], False)):
        (tmp_path / str(len(items))).mkdir()
        store = stored_items_database(tmp_path / str(len(items)), items)
        ctx = FakeContext(config=csto_config(), store=store)
        assert run(["rules", "backtest", "csto", "--since", "2d"], ctx) == 0
        assert ("note: no items were stored since" in ctx.stderr.getvalue()) is noted
        assert "the config's `database`" in ctx.stderr.getvalue() or not noted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stderr", "draws"), [
    pytest.param(Terminal(), True, id="terminal"),
    pytest.param(io.StringIO(), False, id="pipe or file"),
])
def test_backtest_command_shows_progress_on_a_terminal_only(
    tmp_path: Path, stderr: io.StringIO, draws: bool
) -> None:
    store = stored_items_database(tmp_path, [recent(i, f"story {i}") for i in range(1, 1201)])
    ctx = FakeContext(config=csto_config(), store=store, stderr=stderr)
    assert run(["rules", "backtest", "csto", "--since", "2d"], ctx) == 0
    assert ctx.stdout.getvalue().startswith("rule 'csto': 600 of 1200 items since")
    assert ("backtest" in stderr.getvalue()) is draws
    if draws:
        assert "1200/1200" in stderr.getvalue()  # every item counted, the last step included
    else:
        assert stderr.getvalue() == ""


def test_backtest_command_invalid_query_exits_2() -> None:
    config = SimpleNamespace(rules=[], lists={}, feeds=[])
    ctx = FakeContext(config=config, store=None)
    assert run(["rules", "backtest", "(CSTO"], ctx) == 2
    assert "unbalanced parenthesis opened at column 1" in ctx.stderr.getvalue()


def test_backtest_streams_items_without_holding_them() -> None:
    """Items are matched as they stream: memory does not grow with their number.

    (The issue's time bound, 100,000 stored items in under 30 s, is measured by
    ``python -m bench backtest`` on a real database.)
    """
    ruleset = compile_rules([RuleSpec("r", '"withdraw from" AND (CSTO OR NATO) NOT sport')])

    def items(count: int) -> Iterator[StoredItem]:
        for i in range(count):
            yield stored(i, f"Headline number {i} about Armenia", days_ago=i % 7)

    peaks = []
    for count in (2_000, 20_000):
        tracemalloc.start()
        result = backtest(ruleset, items(count))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert result.items == count and result.fired == count // 2
        assert sum(result.per_day.values()) == result.fired and len(result.examples) == 5
    # Ten times the items; held items would take ten times the memory.
    assert peaks[1] < 2 * peaks[0], peaks


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.txt", None, "No such file or directory"),
        ("a-directory", "dir", "Is a directory"),
        ("latin1.txt", b"Pashinyan \xe9tait l\xe0", "can't decode byte 0xe9"),
    ],
)
def test_rules_test_unreadable_file_is_a_message_not_a_traceback(
    tmp_path: Path, name: str, content: bytes | str | None, reason: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["--config", str(tmp_path / "unused.yaml"), "rules", "test", "CSTO", "--file", str(path)],
        stdout=out,
        stderr=err,
        environ={},
    )
    # 1 would read as NO MATCH to a script.
    assert code == 2
    assert out.getvalue() == ""
    message = err.getvalue()
    assert message.startswith(f"wirewatch: cannot read --file {path}: ")
    assert reason in message
    assert "Traceback" not in message


def test_backtest_of_a_mistyped_rule_name_says_so(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'wirewatch.db'}\n"
        "feeds:\n  - name: bbc\n    url: http://127.0.0.1:9/bbc.xml\n"
        "rules:\n  - name: armenia-csto\n    query: CSTO\n",
        encoding="utf-8",
    )
    Store.open(f"sqlite:///{tmp_path / 'wirewatch.db'}").close()

    def backtest_of(name: str) -> tuple[str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = ["--config", str(config), "rules", "backtest", name]
        assert main(argv, stdout=out, stderr=err, environ={}) == 0
        return out.getvalue(), err.getvalue()

    out, err = backtest_of("armenia-csot")
    assert out.startswith("query 'armenia-csot': 0 of 0 items")
    assert err.splitlines()[0] == (
        "note: no rule named 'armenia-csot' (did you mean 'armenia-csto'?); "
        "trying it as a query"
    )
    # An ad-hoc query far from every rule name is tried without a note about names
    # (the empty database still gets its own).
    assert "no rule named" not in backtest_of("Pashinyan AND withdraw*")[1]


def test_rules_test_lists_a_repeated_term_once_with_its_count(tmp_path: Path) -> None:
    body = tmp_path / "item.txt"
    body.write_text("CSTO said. " * 30 + "Armenia will withdraw.", encoding="utf-8")
    ctx = FakeContext()
    assert run(["rules", "test", "CSTO AND withdraw*", "--file", str(body)], ctx) == 0
    assert "  terms:   content:'CSTO' ×30, content:'withdraw'\n" in ctx.stdout.getvalue()


def test_rules_test_with_a_list_and_a_broken_config_is_not_no_match(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("lists:\n  csto: [CSTO]\nfeeds: []\n", encoding="utf-8")
    for path in (config, tmp_path / "missing.yaml"):
        err = io.StringIO()
        argv = ["--config", str(path), "rules", "test", "@csto", "--title", "CSTO"]
        assert main(argv, stdout=io.StringIO(), stderr=err, environ={}) == 2
        assert str(path) in err.getvalue()


@pytest.mark.parametrize("examples", ["-1", "x", "2.5"])
def test_backtest_examples_must_be_a_whole_number_from_0(examples: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(["rules", "backtest", "CSTO", "--examples", examples], FakeContext())
    assert stopped.value.code == 2


def test_rules_test_and_backtest_print_feed_text_a_terminal_cannot_obey(tmp_path: Path) -> None:
    # An ANSI sequence in a title or body repainted the editor's terminal (ESC, and
    # U+009B, the C1 form of ESC [); line breaks inside a snippet broke its line.
    hostile = "CSTO \x1b[2J\x1b[31mred\x1b[0m and \x9b1mbold\nsecond line withdraw"
    ctx = FakeContext(stdin=io.StringIO(hostile))
    assert run(["rules", "test", "CSTO", "--file", "-"], ctx) == 0
    out = ctx.stdout.getvalue()
    assert "\x1b" not in out and "\x9b" not in out
    assert "snippet: **CSTO** [2J[31mred[0m and 1mbold second line withdraw" in out

    item = dataclasses.replace(recent(1, "\x1b]0;pwned\x07CSTO exit"), content=hostile)
    ctx = FakeContext(config=csto_config(),
                      store=stored_items_database(tmp_path, [item]))
    assert run(["rules", "backtest", "csto", "--since", "2d"], ctx) == 0
    out = ctx.stdout.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "] ]0;pwnedCSTO exit\n" in out
