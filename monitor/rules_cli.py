"""``wirewatch rules test`` and ``wirewatch rules backtest``: tools for editors tuning a rule.

``rules test QUERY [--title TEXT] [--file PATH | -]``
    Matches one query against a piece of text.  Exit 0 MATCH, 1 NO MATCH,
    2 the query is invalid (the caret message goes to stderr) or the file
    cannot be read.

``rules backtest NAME_OR_QUERY [--since 7d]``
    Replays the items in the database through one rule (a configured rule's
    name, or a query) and prints how many would have fired, per day, and the
    most recent examples.  Items are streamed, so memory stays flat however
    many there are.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import unicodedata
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO

from monitor.durations import DurationError, parse_duration
from monitor.progress import Advance, progress_bar
from notifiers.base import one_line, strip_control_chars
from rules import Document, Hit, RuleSet, RuleSetError, RuleSpec, compile_rules

EXIT_MATCH, EXIT_NO_MATCH, EXIT_BAD_QUERY = 0, 1, 2
EXIT_UNREADABLE = 2  # the usage-error code: neither MATCH nor NO MATCH
TAG_PREFIX = "tag:"
ADHOC_RULE = "query"


class _Context(Protocol):
    stdout: TextIO
    stderr: TextIO

    def load_config(self) -> Any: ...

    def open_report_store(self) -> Any: ...


def add_rules_commands(subparsers: Any) -> None:
    """Register ``rules test`` and ``rules backtest`` on the CLI's sub-command parsers."""
    rules = subparsers.add_parser("rules", help="try a watch rule on text or on stored items")
    commands = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")

    test = commands.add_parser(
        "test",
        help="match one query against text; exit 0 MATCH, 1 NO MATCH, 2 invalid query",
    )
    test.add_argument("query", metavar="QUERY")
    test.add_argument("--title", default="", help="the item's title")
    test.add_argument(
        "--file", metavar="PATH", help="the item's body text; '-' reads standard input"
    )
    # The other fields a query can scope to, so that summary:, author:, category:,
    # feed: and url: terms can be tried too.
    test.add_argument("--summary", default="", help="the item's summary")
    test.add_argument("--author", default="", help="the item's author")
    test.add_argument("--category", action="append", default=[], metavar="CATEGORY",
                      help="one of the item's categories (repeatable)")
    test.add_argument("--feed", action="append", default=[], metavar="NAME_OR_TAG",
                      help="the feed's name or one of its tags, as feed: sees them (repeatable)")
    test.add_argument("--url", default="", help="the item's link, as url: sees it")
    # 1 is NO MATCH here: a config it cannot read (for @lists) must not look like one.
    test.set_defaults(func=cmd_rules_test, exit_cannot_run=EXIT_UNREADABLE)

    backtest = commands.add_parser(
        "backtest", help="how often a rule would have fired on the stored items"
    )
    backtest.add_argument(
        "rule", metavar="NAME_OR_QUERY", help="a configured rule's name or a query"
    )
    backtest.add_argument(
        "--since", type=_duration, default=timedelta(days=7), help="how far back (default 7d)"
    )
    backtest.add_argument(
        "--examples", type=_count, default=5, metavar="N",
        help="recent matches to show (default 5; 0 for none)"
    )
    backtest.set_defaults(func=cmd_rules_backtest)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_EXAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {MAX_EXAMPLES}, got {text!r}")
    return value


#: The most --examples: any more is not reading but an export (`wirewatch hits`).
MAX_EXAMPLES = 10_000


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


# ----------------------------------------------------------------------------- rules test


def cmd_rules_test(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        body = _read_body(args.file, stdin=getattr(ctx, "stdin", sys.stdin))
    except (OSError, UnicodeDecodeError) as exc:
        # Not 1: a script reading the exit code must not take this for NO MATCH.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        source = "standard input" if args.file == "-" else args.file
        print(f"wirewatch: cannot read --file {source}: {reason}", file=ctx.stderr)
        return EXIT_UNREADABLE
    # NFKC: a list typed in full width (＠csto) is a list too (docs/rules.md).
    uses_lists = "@" in unicodedata.normalize("NFKC", args.query)
    lists = _config_lists(ctx) if uses_lists else {}
    ruleset = _compile_or_report(args.query, lists, ctx.stderr)
    if ruleset is None:
        return EXIT_BAD_QUERY
    hits = ruleset.match(Document(title=args.title, summary=args.summary, content=body,
                                  author=args.author, categories=tuple(args.category),
                                  feeds=tuple(args.feed), url=args.url))
    if not hits:
        print("NO MATCH", file=ctx.stdout)
        return EXIT_NO_MATCH
    print("MATCH", file=ctx.stdout)
    print(describe_hit(hits[0]), file=ctx.stdout)
    return EXIT_MATCH


def _read_body(path: str | None, *, stdin: TextIO) -> str:
    if path is None:
        return ""
    if path == "-":
        return stdin.read()
    return Path(path).read_text(encoding="utf-8")


def _config_lists(ctx: _Context) -> Mapping[str, Sequence[str]]:
    """The config's shared term lists, for queries that use @name."""
    return dict(getattr(ctx.load_config(), "lists", {}) or {})


def _compile_or_report(
    query: str, lists: Mapping[str, Sequence[str]], stderr: TextIO
) -> RuleSet | None:
    try:
        ruleset = compile_rules([RuleSpec(ADHOC_RULE, query)], lists=lists)
    except RuleSetError as exc:
        for error in exc.errors:
            print(error.render(), file=stderr)
        return None
    for warning in ruleset.warnings:
        print(f"warning: {warning.message}", file=stderr)
    return ruleset


def describe_hit(hit: Hit) -> str:
    """The matched terms and the snippet, marks shown as **bold**, for a terminal."""
    # Each occurrence is a term of the hit; a word found forty times is listed once.
    counts = Counter(f"{t.field}:{t.text!r}" for t in hit.terms)
    terms = ", ".join(
        term if count == 1 else f"{term} ×{count}" for term, count in counts.items()
    )
    terms = terms or "(no positive terms)"
    return f"  terms:   {terms}\n  snippet: {_for_terminal(hit.snippet.render('**', '**'))}"


def _for_terminal(text: str) -> str:
    """Feed text as one line a terminal prints and does not obey: an ANSI escape
    sequence in a title or a body (ESC, C1 controls) would repaint the screen."""
    return one_line(strip_control_chars(text))


# ------------------------------------------------------------------------- rules backtest


@dataclass(frozen=True, slots=True)
class Example:
    when: datetime
    feed: str
    title: str
    hit: Hit


@dataclass(frozen=True, slots=True)
class BacktestResult:
    items: int
    per_day: dict[date, int]
    examples: tuple[Example, ...]  # most recent first

    @property
    def fired(self) -> int:
        return sum(self.per_day.values())


def backtest(
    ruleset: RuleSet,
    items: Iterable[Any],
    *,
    feeds: Sequence[str] | None = None,
    examples: int = 5,
) -> BacktestResult:
    """Run a one-rule set over stored items (``StoredItem``-shaped), counting hits per day.

    ``feeds`` is the rule's feed scope as configured (names or ``tag:X``);
    ``None`` means every feed.  Only ``examples`` recent hits are kept, so memory
    does not grow with the number of items.
    """
    names = {f for f in feeds or () if not f.startswith(TAG_PREFIX)}
    tags = {f[len(TAG_PREFIX) :] for f in feeds or () if f.startswith(TAG_PREFIX)}
    per_day: Counter[date] = Counter()
    recent: deque[Example] = deque(maxlen=max(0, examples))
    count = 0
    for item in items:
        count += 1
        if feeds is not None and item.feed_name not in names and not tags & set(item.feed_tags):
            continue
        hits = ruleset.match(
            Document(
                title=item.title or "",
                summary=item.summary or "",
                content=item.content or "",
                author=item.author or "",
                categories=tuple(item.categories or ()),
                feeds=(item.feed_name, *item.feed_tags),
                url=item.link or "",
            )
        )
        if not hits:
            continue
        when = item.first_seen_at
        per_day[when.date()] += 1
        recent.append(Example(when, item.feed_name, item.title or "", hits[0]))
    ordered = tuple(sorted(recent, key=lambda e: e.when, reverse=True))
    return BacktestResult(count, dict(sorted(per_day.items())), ordered)


def render_backtest(result: BacktestResult, *, label: str, since: datetime) -> Iterator[str]:
    share = f" ({result.fired / result.items:.1%})" if result.items else ""
    yield (
        f"{label}: {result.fired} of {result.items} items since "
        f"{since.isoformat(timespec='minutes')} would have fired{share}"
    )
    if result.per_day:
        peak = max(result.per_day.values())
        for day, fired in result.per_day.items():
            bar = "#" * max(1, round(30 * fired / peak))
            yield f"  {day.isoformat()}  {fired:>6}  {bar}"
    if result.examples:
        yield "most recent:"
        for example in result.examples:
            when = example.when.isoformat(timespec="minutes")
            yield f"  {when}  [{_for_terminal(example.feed)}] {_for_terminal(example.title)}"
            yield f"      {_for_terminal(example.hit.snippet.render('**', '**'))}"


# The bar moves in steps of this many items: redrawing it per item would cost more
# than matching the item.
_PROGRESS_STEP = 500


def _advancing(items: Iterable[Any], advance: Advance) -> Iterator[Any]:
    pending = 0
    for item in items:
        yield item
        pending += 1
        if pending == _PROGRESS_STEP:
            advance(pending)
            pending = 0
    advance(pending)


def cmd_rules_backtest(args: argparse.Namespace, ctx: _Context) -> int:
    config = ctx.load_config()
    rules_by_name = {rule.name: rule for rule in getattr(config, "rules", ())}
    configured = rules_by_name.get(args.rule)
    query = configured.query if configured is not None else args.rule
    label = f"rule {args.rule!r}" if configured is not None else f"query {args.rule!r}"
    if configured is None:
        # A mistyped rule name is a valid one-word query that fires on nothing:
        # without a word, "0 items would have fired" reads as the rule's verdict.
        similar = difflib.get_close_matches(args.rule, list(rules_by_name), n=1, cutoff=0.6)
        if similar:
            print(
                f"note: no rule named {args.rule!r} (did you mean {similar[0]!r}?); "
                "trying it as a query",
                file=ctx.stderr,
            )
    ruleset = _compile_or_report(query, dict(getattr(config, "lists", {}) or {}), ctx.stderr)
    if ruleset is None:
        return EXIT_BAD_QUERY
    since = datetime.now(UTC) - args.since
    feed_tags = {feed.name: tuple(feed.tags) for feed in getattr(config, "feeds", ())}
    store = ctx.open_report_store()
    try:
        total = store.count_items(since=since)
        with progress_bar(ctx.stderr, total=total, description="backtest") as advance:
            items = _advancing(store.iter_items(since=since, feed_tags=feed_tags), advance)
            result = backtest(
                ruleset,
                items,
                feeds=configured.feeds if configured is not None else None,
                examples=args.examples,
            )
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    for line in render_backtest(result, label=label, since=since):
        print(line, file=ctx.stdout)
    if result.items == 0:
        # "0 of 0 would have fired" reads as the rule's verdict; more often the command
        # ran beside the wrong database (a relative SQLite path, another directory).
        print(
            f"note: no items were stored since {since.isoformat(timespec='minutes')}; "
            "check that the config's `database` is the one the daemon writes to "
            "(a relative SQLite path is relative to the current directory), "
            "or widen --since",
            file=ctx.stderr,
        )
    return 0
