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
from bisect import bisect_left
from collections.abc import Callable
from functools import lru_cache
from itertools import chain
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


_EMPTY = FieldText("")
_FIELD_BREAK = ("\x01",)  # a word no phrase holds, between fields in text_joined


@lru_cache(maxsize=4096)
def _feed_value(name: str) -> str:
    return feed_value(name)  # a handful of feed names and tags, over and over


class Prepared:
    """A document tokenized once for all the rules that look at it."""

    __slots__ = (
        "_all",
        "_text_joined",
        "doc",
        "feeds",
        "fields",
        "memo",
        "text_distinct",
        "url_folded",
    )

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        title, summary, content = (
            FieldText(doc.title),
            FieldText(doc.summary),
            FieldText(doc.content),
        )
        self.fields: dict[str, FieldText] = {
            "title": title,
            "summary": summary,
            "content": content,
            "author": FieldText(doc.author) if doc.author else _EMPTY,
            "category": FieldText.from_values(doc.categories) if doc.categories else _EMPTY,
        }
        self.feeds: tuple[str, ...] = tuple(map(_feed_value, doc.feeds))
        self.url_folded = doc.url.casefold()
        self.memo: dict[Matcher, tuple[Occurrence, ...]] = {}
        # Unscoped terms search title + summary + content: one set answers them all.
        self.text_distinct = frozenset(title.tokens + summary.tokens + content.tokens)
        self._all: frozenset[str] | None = None
        self._text_joined: str | None = None

    def text_joined(self) -> str:
        """Title, summary and content words NUL-joined as in ``FieldText.joined``, the
        fields kept apart by a \\x01 word that no phrase holds, so one search covers
        all three."""
        if self._text_joined is None:
            fields = self.fields
            # One join, not one per field and another of those.
            words = chain(
                fields["title"].tokens,
                _FIELD_BREAK,
                fields["summary"].tokens,
                _FIELD_BREAK,
                fields["content"].tokens,
            )
            self._text_joined = "\x00" + "\x00".join(words) + "\x00"
        return self._text_joined

    def all_joined(self) -> str:
        """``text_joined`` plus the author and category words: what prefix keys search."""
        author, category = self.fields["author"], self.fields["category"]
        if author.tokens or category.tokens:
            return "\x00\x01".join((self.text_joined(), author.joined, category.joined))
        return self.text_joined()

    def has_only_text_words(self) -> bool:
        """No author or category words: every word the index sees is a text word."""
        return self.all_tokens() is self.text_distinct

    def all_tokens(self) -> frozenset[str]:
        """Every folded word in every tokenized field: what the index looks up."""
        if self._all is None:
            author, category = self.fields["author"], self.fields["category"]
            if author.tokens or category.tokens:
                self._all = self.text_distinct | author.distinct | category.distinct
            else:
                self._all = self.text_distinct
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
        "needle",
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
        self.prefix = tuple(
            _literal_prefix(t) if c is not None else ""
            for t, c in zip(self.tokens, self.tests, strict=True)
        )
        # A phrase of literal words, or one word with a trailing *, is a substring
        # search in the field's NUL-joined words (FieldText.joined): a C-speed scan.
        self.needle: str | None = None
        if not self.exact and not self.simple:
            if all(c is None for c in self.tests):
                self.needle = "\x00" + "\x00".join(self.tokens) + "\x00"
            elif (
                len(self.tokens) == 1
                and self.first.endswith("*")
                and self.prefix[0] + "*" == self.first
            ):
                self.needle = "\x00" + self.prefix[0]

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
        needle = self.needle
        if needle is not None:
            if self.text_only:
                # Most phrases fail on a missing word: a set check before the search.
                return self.literals <= doc.text_distinct and needle in doc.text_joined()
            fields = doc.fields
            for name in self.fields:  # noqa: SIM110
                if needle in fields[name].joined:
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
        if not literals <= doc.all_tokens():  # absent from every field: no field to look at
            return found
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


def _plain_set(matcher: Matcher) -> Words | None:
    """The words of an unscoped single word or an OR of only such words, else None."""
    if isinstance(matcher, SeqMatcher) and matcher.simple and matcher.text_only:
        return (matcher.first,)
    if isinstance(matcher, OrMatcher) and not matcher.others and not matcher.scoped:
        return matcher.words
    return None


def _plain_words(children: tuple[Matcher, ...]) -> tuple[frozenset[str], tuple[Matcher, ...]]:
    """Split off the single unscoped words: one set operation answers them all."""
    words = frozenset(
        c.first for c in children if isinstance(c, SeqMatcher) and c.simple and c.text_only
    )
    others = tuple(
        c for c in children if not (isinstance(c, SeqMatcher) and c.simple and c.text_only)
    )
    return words, others


def _plain_occurrences(doc: Prepared, word: str, out: list[Occurrence]) -> None:
    """Where an unscoped single word stands: what its SeqMatcher would collect."""
    fields = doc.fields
    for name in TEXT_FIELDS:
        out.extend((name, p, p) for p in fields[name].positions_of(word))


# Word groups are kept as tuples of strings: set methods take any iterable, and the
# garbage collector stops tracking a tuple of strings (never a frozenset), which
# keeps its passes short over a rule set of millions of objects.
Words = tuple[str, ...]


class AndMatcher:
    """All children.  The usual shapes of an editor's rule, ``a b (c OR d) NOT (e OR f)``
    over unscoped words, are answered by set operations on the item's word set:
    ``words`` all present, each of ``any_of`` met, none of ``none_of`` present.

    Those children are not kept as objects; their words are enough to explain a hit.
    """

    __slots__ = ("any_of", "none_of", "others", "words")

    def __init__(self, children: tuple[Matcher, ...]) -> None:
        words, rest = _plain_words(children)
        any_of: list[Words] = []
        none_of: set[str] = set()
        others: list[Matcher] = []
        for child in rest:
            if isinstance(child, OrMatcher) and not child.others and not child.scoped:
                any_of.append(child.words)
            elif isinstance(child, NotMatcher) and _plain_set(child.child) is not None:
                none_of.update(_plain_set(child.child) or ())
            else:
                others.append(child)
        self.words: Words = tuple(sorted(words))
        self.any_of = tuple(any_of)
        self.none_of: Words = tuple(sorted(none_of))
        self.others = tuple(others)

    def test(self, doc: Prepared) -> bool:
        present = doc.text_distinct
        if not present.issuperset(self.words):
            return False
        for words in self.any_of:
            if present.isdisjoint(words):
                return False
        if not present.isdisjoint(self.none_of):
            return False
        for child in self.others:  # noqa: SIM110
            if not child.test(doc):
                return False
        return True

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        # Each plain word that stands in the item, then every other (true) child.
        present = doc.text_distinct
        for word in self.words:
            _plain_occurrences(doc, word, out)
        for words in self.any_of:
            for word in words:
                if word in present:
                    _plain_occurrences(doc, word, out)
        for child in self.others:
            child.collect(doc, out)


class OrMatcher:
    """Any child.  Unscoped single words are one isdisjoint on the item's word set;
    single words scoped to one field (``title:(a OR b)``) one per field."""

    __slots__ = ("children", "others", "scoped", "words")

    def __init__(self, children: tuple[Matcher, ...]) -> None:
        self.children = children
        words, rest = _plain_words(children)
        by_field: dict[str, set[str]] = {}
        others: list[Matcher] = []
        for child in rest:
            if isinstance(child, SeqMatcher) and child.simple and len(child.fields) == 1:
                by_field.setdefault(child.fields[0], set()).add(child.first)
            else:
                others.append(child)
        self.words: Words = tuple(sorted(words))
        self.scoped = tuple((name, tuple(sorted(words))) for name, words in by_field.items())
        self.others = tuple(others)

    def test(self, doc: Prepared) -> bool:
        if not doc.text_distinct.isdisjoint(self.words):
            return True
        if self.scoped:
            fields = doc.fields
            for name, words in self.scoped:
                if not fields[name].distinct.isdisjoint(words):
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

    def _paired(self, doc: Prepared) -> tuple[list[Occurrence], list[Occurrence]]:
        """The left and the right occurrences that stand near one of the other side.

        Each side's positions are sorted per field and searched by bisection: comparing
        every left with every right took seconds for an item repeating both words a few
        thousand times, and hours for one a hostile feed filled with them.
        """
        lefts = self.left.occurrences(doc)
        if not lefts:
            return [], []
        rights = self.right.occurrences(doc)
        if not rights:
            return [], []
        distance, ordered = self.distance, self.ordered
        left_ends, left_starts = _sorted_positions(lefts)
        right_starts, right_ends = _sorted_positions(rights, by_start=True)
        # rt follows lf: 1 <= rt.start - lf.end <= distance; lf follows rt (unordered
        # only): 1 <= lf.start - rt.end <= distance.
        paired_lefts = [
            lf for lf in lefts
            if _any_within(right_starts.get(lf[0]), lf[2] + 1, lf[2] + distance)
            or (not ordered and _any_within(right_ends.get(lf[0]), lf[1] - distance, lf[1] - 1))
        ]
        if not paired_lefts:
            return [], []
        paired_rights = [
            rt for rt in rights
            if _any_within(left_ends.get(rt[0]), rt[1] - distance, rt[1] - 1)
            or (not ordered and _any_within(left_starts.get(rt[0]), rt[2] + 1, rt[2] + distance))
        ]
        return paired_lefts, paired_rights

    def test(self, doc: Prepared) -> bool:
        # Both operands present at all (set and substring checks) before any position.
        if not (self.left.test(doc) and self.right.test(doc)):
            return False
        return bool(self._paired(doc)[0])

    def collect(self, doc: Prepared, out: list[Occurrence]) -> None:
        paired_lefts, paired_rights = self._paired(doc)
        out.extend(paired_lefts)
        out.extend(paired_rights)


def _sorted_positions(
    occurrences: tuple[Occurrence, ...], *, by_start: bool = False
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per field, the sorted ends and the sorted starts of ``occurrences`` (starts first
    when ``by_start``)."""
    ends: dict[str, list[int]] = {}
    starts: dict[str, list[int]] = {}
    for field, start, end in occurrences:
        ends.setdefault(field, []).append(end)
        starts.setdefault(field, []).append(start)
    for positions in chain(ends.values(), starts.values()):
        positions.sort()
    return (starts, ends) if by_start else (ends, starts)


def _any_within(positions: list[int] | None, low: int, high: int) -> bool:
    """Whether the sorted ``positions`` hold one from ``low`` to ``high``."""
    if not positions:
        return False
    i = bisect_left(positions, low)
    return i < len(positions) and positions[i] <= high


def compile_node(node: Node, interned: dict[Node, Matcher], query: str = "") -> Matcher:
    """The matcher for ``node``; equal terms across rules share one matcher.

    Only leaves are interned: a term recurs across rules, a whole AND or OR rarely
    does, and hashing a composite node hashes its whole subtree.
    """
    matcher: Matcher
    if isinstance(node, Seq | Url | Feed):
        existing = interned.get(node)
        if existing is not None:
            return existing
        if isinstance(node, Seq):
            matcher = SeqMatcher(node)
        elif isinstance(node, Url):
            matcher = UrlMatcher(node)
        else:
            matcher = FeedMatcher(node)
        interned[node] = matcher
        return matcher
    if isinstance(node, And):
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
