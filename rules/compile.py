"""Syntax tree -> matcher objects evaluated against a prepared document.

Matchers are interned while a rule set compiles, so a term used by a thousand
rules is one object; the document memoizes each leaf's occurrences, so the term
is looked up once per item however many candidate rules share it.

An *occurrence* is ``(field, start, end)``: for tokenized fields the first and
last token position (inclusive); for ``url`` character offsets into the link;
for ``feed`` the index of the matching name or tag.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from rules.document import Document
from rules.errors import RuleError
from rules.parse import (
    TEXT_FIELDS,
    And,
    Feed,
    Near,
    Node,
    Not,
    Or,
    Seq,
    Url,
    feed_value,
    is_wildcard,
)
from rules.text import FieldText, fold

Occurrence = tuple[str, int, int]


class Prepared:
    """A document tokenized once for all the rules that look at it."""

    __slots__ = ("_all", "doc", "feeds", "fields", "memo", "text_distinct", "url_folded")

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.fields: dict[str, FieldText] = {
            "title": FieldText(doc.title),
            "summary": FieldText(doc.summary),
            "content": FieldText(doc.content),
            "author": FieldText(doc.author),
            "category": FieldText.from_values(doc.categories),
        }
        self.feeds: tuple[str, ...] = tuple(feed_value(f) for f in doc.feeds)
        self.url_folded = doc.url.casefold()
        self.memo: dict[Matcher, tuple[Occurrence, ...]] = {}
        fields = self.fields
        # Unscoped terms search title + summary + content: one set answers them all.
        self.text_distinct = (
            fields["title"].distinct | fields["summary"].distinct | fields["content"].distinct
        )
        self._all: frozenset[str] | None = None

    def all_tokens(self) -> frozenset[str]:
        """Every folded word in every tokenized field: what the index looks up."""
        if self._all is None:
            self._all = (
                self.text_distinct
                | self.fields["author"].distinct
                | self.fields["category"].distinct
            )
        return self._all


class Matcher(Protocol):
    def test(self, doc: Prepared) -> bool: ...

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        """Append the occurrences that make this (true) matcher true."""


class PositionalMatcher(Matcher, Protocol):
    def occurrences(self, doc: Prepared) -> tuple[Occurrence, ...]: ...


TokenTest = Callable[[str], bool]


def _token_test(pattern: str) -> TokenTest:
    """A wildcard token as a predicate; wildcards never span words, so no backtracking blowup."""
    if pattern.endswith("*") and pattern.count("*") == 1 and "?" not in pattern:
        prefix = pattern[:-1]
        return lambda token: token.startswith(prefix)
    regex = re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )
    return lambda token: regex.fullmatch(token) is not None


class SeqMatcher:
    """Consecutive tokens (a word, a phrase, wildcards) in any of ``fields``."""

    __slots__ = (
        "exact",
        "fields",
        "first",
        "literals",
        "prefix",
        "simple",
        "tests",
        "text_only",
        "tokens",
    )

    def __init__(self, node: Seq) -> None:
        self.tokens = node.tokens
        self.fields = node.fields
        self.exact = node.exact
        self.tests: tuple[TokenTest | None, ...] = tuple(
            _token_test(t) if is_wildcard(t) else None for t in node.tokens
        )
        self.simple = len(self.tokens) == 1 and not self.exact and self.tests[0] is None
        self.first = self.tokens[0]
        self.text_only = self.fields == TEXT_FIELDS
        # Every literal word must be in a field for the sequence to stand there.
        self.literals = frozenset(
            t for t, c in zip(self.tokens, self.tests, strict=True) if c is None and not self.exact
        )
        # Non-exact wildcards always begin with >= 3 literal characters (the parser
        # insists): a binary search over the sorted words finds their candidates.
        self.prefix = [
            _literal_prefix(t) if c is not None else ""
            for t, c in zip(self.tokens, self.tests, strict=True)
        ]

    def test(self, doc: Prepared) -> bool:
        if self.simple:
            if self.text_only:
                return self.first in doc.text_distinct
            fields = doc.fields
            first = self.first
            # Explicit loops, not any()/all(): this is the hot path and generators cost.
            for name in self.fields:  # noqa: SIM110
                if first in fields[name].distinct:
                    return True
            return False
        return bool(self.occurrences(doc))

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        out.extend(self.occurrences(doc))

    def occurrences(self, doc: Prepared) -> tuple[Occurrence, ...]:
        found = doc.memo.get(self)
        if found is None:
            found = tuple(self._find(doc))
            doc.memo[self] = found
        return found

    def _find(self, doc: Prepared) -> list[Occurrence]:
        found: list[Occurrence] = []
        last = len(self.tokens) - 1
        literals = self.literals
        for name in self.fields:
            text = doc.fields[name]
            if not text.tokens or not literals <= text.distinct:
                continue
            for start in self._starts(text):
                end = start + last
                if end < len(text.tokens) and all(
                    self._token_at(text, start + i, i) for i in range(1, last + 1)
                ):
                    found.append((name, start, end))
        return found

    def _starts(self, text: FieldText) -> list[int]:
        first, check = self.tokens[0], self.tests[0]
        if check is None:
            if self.exact:
                positions = text.positions_of(fold(first))
                exacts = text.exact_tokens
                return [p for p in positions if exacts[p] == first]
            return text.positions_of(first)
        if self.exact:
            return [p for p, t in enumerate(text.exact_tokens) if check(t)]
        starts: list[int] = []
        for token in text.with_prefix(self.prefix[0]):
            if check(token):
                starts.extend(text.positions_of(token))
        starts.sort()
        return starts

    def _token_at(self, text: FieldText, position: int, i: int) -> bool:
        actual = text.exact_tokens[position] if self.exact else text.tokens[position]
        check = self.tests[i]
        return check(actual) if check is not None else actual == self.tokens[i]


def _literal_prefix(pattern: str) -> str:
    cut = min(pattern.find(w) for w in "*?" if w in pattern)
    return pattern[:cut]


class UrlMatcher:
    __slots__ = ("value",)

    def __init__(self, node: Url) -> None:
        self.value = node.value

    def test(self, doc: Prepared) -> bool:
        return self.value in doc.url_folded

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        start = doc.url_folded.find(self.value)
        if start != -1:
            out.append(("url", start, start + len(self.value)))


class FeedMatcher:
    __slots__ = ("value",)

    def __init__(self, node: Feed) -> None:
        self.value = node.value

    def test(self, doc: Prepared) -> bool:
        return self.value in doc.feeds

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        out.extend(("feed", i, i) for i, v in enumerate(doc.feeds) if v == self.value)


def _plain_words(children: tuple[Matcher, ...]) -> tuple[frozenset[str], tuple[Matcher, ...]]:
    """Split off the single unscoped words: one set operation answers them all."""
    words = frozenset(
        c.first for c in children if isinstance(c, SeqMatcher) and c.simple and c.text_only
    )
    others = tuple(
        c for c in children if not (isinstance(c, SeqMatcher) and c.simple and c.text_only)
    )
    return words, others


class AndMatcher:
    __slots__ = ("children", "others", "words")

    def __init__(self, children: tuple[Matcher, ...]) -> None:
        self.children = children
        self.words, self.others = _plain_words(children)

    def test(self, doc: Prepared) -> bool:
        if not self.words <= doc.text_distinct:
            return False
        for child in self.others:  # noqa: SIM110
            if not child.test(doc):
                return False
        return True

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        for child in self.children:
            child.collect(doc, out)


class OrMatcher:
    __slots__ = ("children", "others", "words")

    def __init__(self, children: tuple[Matcher, ...]) -> None:
        self.children = children
        self.words, self.others = _plain_words(children)

    def test(self, doc: Prepared) -> bool:
        if not self.words.isdisjoint(doc.text_distinct):
            return True
        for child in self.others:  # noqa: SIM110
            if child.test(doc):
                return True
        return False

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        for child in self.children:
            if child.test(doc):
                child.collect(doc, out)

    def occurrences(self, doc: Prepared) -> tuple[Occurrence, ...]:
        found: list[Occurrence] = []
        for child in self.children:
            found.extend(child.occurrences(doc))  # type: ignore[attr-defined]
        return tuple(found)


class NotMatcher:
    __slots__ = ("child",)

    def __init__(self, child: Matcher) -> None:
        self.child = child

    def test(self, doc: Prepared) -> bool:
        return not self.child.test(doc)

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        return None  # an absent term has nothing to show


class NearMatcher:
    """Two positional operands in the same field, at most ``distance`` words apart.

    Distance counts word positions: adjacent words are 1 apart, so ``a NEAR/1 b``
    means the two stand side by side.  Operands never overlap.
    """

    __slots__ = ("distance", "left", "ordered", "right")

    def __init__(
        self, left: PositionalMatcher, right: PositionalMatcher, distance: int, ordered: bool
    ) -> None:
        self.left = left
        self.right = right
        self.distance = distance
        self.ordered = ordered

    def _pairs(self, doc: Prepared) -> list[tuple[Occurrence, Occurrence]]:
        lefts = self.left.occurrences(doc)
        if not lefts:
            return []
        rights = self.right.occurrences(doc)
        pairs = []
        distance = self.distance
        for lf in lefts:
            for rt in rights:
                if lf[0] != rt[0]:
                    continue
                if 1 <= rt[1] - lf[2] <= distance or (
                    not self.ordered and 1 <= lf[1] - rt[2] <= distance
                ):
                    pairs.append((lf, rt))
        return pairs

    def test(self, doc: Prepared) -> bool:
        return bool(self._pairs(doc))

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        for lf, rt in self._pairs(doc):
            out.append(lf)
            out.append(rt)


def compile_node(node: Node, interned: dict[Node, Matcher], query: str = "") -> Matcher:
    """The matcher for ``node``; equal subtrees across rules share one matcher."""
    existing = interned.get(node)
    if existing is not None:
        return existing
    matcher: Matcher
    if isinstance(node, Seq):
        matcher = SeqMatcher(node)
    elif isinstance(node, Url):
        matcher = UrlMatcher(node)
    elif isinstance(node, Feed):
        matcher = FeedMatcher(node)
    elif isinstance(node, And):
        matcher = AndMatcher(_cheap_first(node.children, interned, query))
    elif isinstance(node, Or):
        matcher = OrMatcher(_cheap_first(node.children, interned, query))
    elif isinstance(node, Not):
        matcher = NotMatcher(compile_node(node.child, interned, query))
    else:
        left = compile_node(node.left, interned, query)
        right = compile_node(node.right, interned, query)
        if not (_positional(left) and _positional(right)):
            raise RuleError(
                "NEAR works on terms, phrases, wildcards or OR-groups of them, "
                "not on url: or feed: values",
                query=query,
                column=1,
            )
        near_left: PositionalMatcher = left  # type: ignore[assignment]
        near_right: PositionalMatcher = right  # type: ignore[assignment]
        matcher = NearMatcher(near_left, near_right, node.distance, node.ordered)
    interned[node] = matcher
    return matcher


def _positional(matcher: Matcher) -> bool:
    if isinstance(matcher, SeqMatcher):
        return True
    if isinstance(matcher, OrMatcher):
        return all(_positional(c) for c in matcher.children)
    return False


def _cost(node: Node) -> int:
    """Rough evaluation cost: a set lookup is cheapest, proximity dearest."""
    if isinstance(node, Seq):
        simple = len(node.tokens) == 1 and not node.exact and not is_wildcard(node.tokens[0])
        return 1 if simple else 3
    if isinstance(node, Url | Feed):
        return 1
    if isinstance(node, Not):
        return _cost(node.child)
    if isinstance(node, Near):
        return 10
    return sum(_cost(c) for c in node.children)


def _cheap_first(
    children: tuple[Node, ...], interned: dict[Node, Matcher], query: str
) -> tuple[Matcher, ...]:
    # Evaluation order does not change the result, only how soon AND/OR can stop.
    ordered = sorted(children, key=_cost)
    return tuple(compile_node(c, interned, query) for c in ordered)
