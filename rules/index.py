"""The term index: for one item, which rules are worth evaluating at all.

This is the presearcher idea of Luwak and Lucene's Monitor: reduce every rule
to a set of *keys* such that whenever the rule matches a document, at least one
of its keys occurs in that document.  Indexing each rule under its keys, an item
only needs its own keys looked up to find the candidate rules; every other rule
provably cannot match it.

Keys, per syntax node (``None`` means "cannot be narrowed", i.e. any item may match):

* a word: the folded word; a phrase: its rarest-looking word; a wildcard: the
  first letters of its literal prefix (a *prefix key*); ``feed:x``: that feed value;
  ``url:`` and ``case:`` wildcards: ``None`` (a substring or an exact-case pattern
  has no word to look up).
* ``a OR b``: the union of both sides' keys (``None`` if either is ``None``).
* ``a AND b``, ``a NEAR b``: the keys of the single most selective side.
* ``NOT a``: ``None``.

Rules whose key set is ``None`` are evaluated for every item, so a rule with
no positive term is slow but never wrong.

*Most selective* means rarest in news: a key's cost is the estimated share of
items holding it (``rules/frequencies.py``, document frequencies of the common
words of the corpus's news stories; a word not listed there is rarer than any
listed one, and a longer unlisted word rarer than a shorter one), an OR costs
the sum of its keys.  A rule is filed under its cheapest AND-ed part, and
*gated* by its next cheapest word-only part: among the rules under the item's
keys, a gated rule is a candidate only if one word of that part is present too
(see ``Gates``).  Candidates are a superset of the rules that match; the
property test holds that the result never changes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter

from rules.compile import Prepared
from rules.frequencies import COUNTS, STORIES
from rules.parse import TEXT_FIELDS, And, Feed, Near, Node, Not, Or, Seq, Url, is_wildcard
from rules.text import fold

# Prefix keys are cut to 3 or 4 characters: fewer distinct keys to look up, and
# with many of them an item looks up the first 3 and 4 letters of each word.
PREFIX_MIN = 3
PREFIX_MAX = 4
_HEAD3 = itemgetter(slice(0, 3))
_HEAD4 = itemgetter(slice(0, 4))
# Up to this many prefix keys, each is one substring search in the item's words.
_SEARCHED_PREFIXES = 48

WORD = "w"
PREFIX = "p"
FEED = "f"

Key = tuple[str, str]

# Words too common to narrow anything; a phrase is indexed under another word.
_COMMON = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "she",
        "that",
        "the",
        "their",
        "there",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "which",
        "who",
        "will",
        "with",
        "you",
        "said",
        "says",
        "after",
        "over",
        "new",
        "more",
        "than",
        "about",
        "up",
        "out",
        "not",
        "no",
        "one",
        "two",
        "also",
        "into",
        "за",
        "и",
        "в",
        "во",
        "не",
        "на",
        "с",
        "со",
        "по",
        "к",
        "о",
        "от",
        "из",
        "у",
        "что",
        "это",
        "как",
        "а",
        "de",
        "la",
        "le",
        "les",
        "et",
        "des",
        "du",
        "el",
        "en",
        "y",
        "los",
        "las",
    )
)


# Estimated share of items holding a word, from how many news stories use it
# (rules/frequencies.py).  A word not listed there is rarer than any listed one;
# among those, a longer word is taken to be the rarer.
_LISTED = {word: count / STORIES for word, count in COUNTS.items()}
_UNLISTED = 1.0 / STORIES
_SORTED_LISTED = sorted(_LISTED)


def word_share(word: str) -> float:
    share = _LISTED.get(word)
    if share is None:
        share = _UNLISTED * 2.0 / (1.0 + len(word) / 4.0)
    if word in _COMMON:
        share = max(share, 0.5)
    return share


@lru_cache(maxsize=65_536)
def prefix_share(prefix: str) -> float:
    """Share of items with a word starting with ``prefix``: listed words plus a rare tail."""
    i = bisect_left(_SORTED_LISTED, prefix)
    total = 20 * _UNLISTED
    while i < len(_SORTED_LISTED) and _SORTED_LISTED[i].startswith(prefix):
        total += _LISTED[_SORTED_LISTED[i]]
        i += 1
    return min(total, 1.0)


def _key_cost(key: Key) -> float:
    kind, value = key
    if kind == WORD:
        return word_share(value)
    if kind == PREFIX:
        return prefix_share(value)
    return 0.05  # a feed name or tag: a feed sends a share of all items


def _seq_keys(node: Seq) -> frozenset[Key] | None:
    best: Key | None = None
    for token in node.tokens:
        key: Key | None
        if is_wildcard(token):
            if node.exact:
                continue
            cut = min(token.find(w) for w in "*?" if w in token)
            prefix = token[:cut]
            key = (PREFIX, prefix[:PREFIX_MAX]) if len(prefix) >= PREFIX_MIN else None
        else:
            key = (WORD, fold(token) if node.exact else token)
        if key is not None and (best is None or _key_cost(key) < _key_cost(best)):
            best = key
    return None if best is None else frozenset((best,))


def rule_keys(node: Node) -> tuple[frozenset[Key] | None, tuple[frozenset[str], ...]]:
    """The keys to file a rule under, and further word sets a match also needs.

    Every AND-ed part of a rule needs one of its keys present; the index files the
    rule under the most selective part and checks the others with cheap set
    operations before evaluating the rule itself.  A part that can only be filed
    under wildcard prefixes is chosen last: looking prefixes up costs every item
    work, looking a word up costs nothing extra.
    """
    parts = required_parts(node)
    if len(parts) == 1:
        return extract_keys(node), ()
    options = [k for k in map(extract_keys, parts) if k is not None]
    if not options:
        return None, ()
    options.sort(key=_filing_cost)
    chosen = options[0]
    rest = [
        frozenset(value for _, value in keys)
        for keys in options[1:]
        if keys != chosen and all(kind == WORD for kind, _ in keys)
    ]
    return chosen, tuple(rest)


def required_parts(node: Node) -> list[Node]:
    """The parts a match needs every one of: AND-ed children and both sides of a NEAR,
    taken apart as deep as they nest (``a NEAR/5 (b OR c) AND d`` needs ``a``,
    ``b OR c`` and ``d``)."""
    if isinstance(node, And):
        return [part for child in node.children for part in required_parts(child)]
    if isinstance(node, Near):
        return required_parts(node.left) + required_parts(node.right)
    return [node]


def _filing_cost(keys: frozenset[Key]) -> tuple[bool, float]:
    return any(kind == PREFIX for kind, _ in keys), _set_cost(keys)


def plain_words(node: Node) -> frozenset[str] | None:
    """The words of an unscoped word or an OR of only such words, else None.

    Such a part is true exactly when one of its words is among the item's
    title, summary and content words: the index answers it completely.
    """
    if isinstance(node, Seq):
        simple = len(node.tokens) == 1 and not node.exact and not is_wildcard(node.tokens[0])
        return frozenset(node.tokens) if simple and node.fields == TEXT_FIELDS else None
    if isinstance(node, Or):
        words: set[str] = set()
        for child in node.children:
            part = plain_words(child)
            if part is None:
                return None
            words |= part
        return frozenset(words)
    return None


def is_decided_by_index(node: Node) -> bool:
    """Whether passing the index (its key and gate) already means the rule matches.

    True for a plain word group and for an AND of at most two distinct plain word
    groups, the commonest shapes of an editor's rule: one group is the filing key,
    the other the gate, and both are looked up among the item's words.
    """
    if not isinstance(node, And):
        return plain_words(node) is not None
    groups = set()
    for child in node.children:
        words = plain_words(child)
        if words is None:
            return False
        groups.add(words)
    return len(groups) <= 2


def _set_cost(keys: frozenset[Key]) -> float:
    return sum(_key_cost(k) for k in keys)


def extract_keys(node: Node) -> frozenset[Key] | None:
    """Keys of which at least one occurs in every document ``node`` matches."""
    if isinstance(node, Seq):
        return _seq_keys(node)
    if isinstance(node, Feed):
        return frozenset(((FEED, node.value),))
    if isinstance(node, Url | Not):
        return None
    if isinstance(node, Or):
        union: set[Key] = set()
        for child in node.children:
            keys = extract_keys(child)
            if keys is None:
                return None
            union.update(keys)
        return frozenset(union)
    children = (node.left, node.right) if isinstance(node, Near) else node.children
    assert isinstance(node, And | Near)
    options = [k for k in (extract_keys(c) for c in children) if k is not None]
    if not options:
        return None
    return min(options, key=_filing_cost)


_NO_RULES: frozenset[int] = frozenset()


class Gates:
    """The gated rules filed under one key, listed under each word of their gate.

    An item selects them with one intersection of ``words`` with its own words.
    Positions are kept in tuples of ints, which the garbage collector stops
    tracking (a list it tracks for ever, lengthening every pass over a large rule
    set).
    """

    __slots__ = ("by_word", "words")

    def __init__(self, by_word: dict[str, list[int]]) -> None:
        self.by_word: dict[str, tuple[int, ...]] = {w: tuple(r) for w, r in by_word.items()}
        self.words: frozenset[str] = frozenset(by_word)

    def select(self, tokens: frozenset[str], found: set[int]) -> None:
        by_word = self.by_word
        for word in self.words & tokens:
            found.update(by_word[word])


@dataclass(slots=True)
class _Filed:
    """The rules filed under one kind of key: ``plain`` ones need nothing more from
    the index, ``gated`` ones also one word of their gate."""

    plain: dict[str, tuple[int, ...]]
    gated: dict[str, Gates]

    @classmethod
    def of(cls, filed: dict[str, tuple[list[int], dict[str, list[int]]]]) -> _Filed:
        plain = {value: tuple(rules) for value, (rules, _) in filed.items() if rules}
        gated = {value: Gates(by_word) for value, (_, by_word) in filed.items() if by_word}
        return cls(plain, gated)

    def select(self, value: str, tokens: frozenset[str], found: set[int]) -> None:
        found.update(self.plain.get(value, ()))
        gates = self.gated.get(value)
        if gates is not None:
            gates.select(tokens, found)


@dataclass(slots=True)
class TermIndex:
    """Rules filed under their keys, plus the rules that must always run.

    For an item, the plain rules of all its word keys are gathered by C-level
    operations (one intersection with the key set, one ``chain``); the gated ones
    by one small intersection per key present.  ``decided`` holds the rules for
    which passing the index is the whole match (``is_decided_by_index``): they
    need no evaluation.
    """

    words: _Filed
    prefixes: _Filed
    feeds: _Filed
    always: tuple[int, ...]
    decided: frozenset[int] = _NO_RULES
    plain_words: frozenset[str] = frozenset()
    gated_words: frozenset[str] = frozenset()
    prefix_needles: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, nodes: Iterable[Node]) -> TermIndex:
        filed: dict[str, dict[str, tuple[list[int], dict[str, list[int]]]]] = {
            WORD: {},
            PREFIX: {},
            FEED: {},
        }
        always: list[int] = []
        decided: list[int] = []
        for position, node in enumerate(nodes):
            keys, prechecks = rule_keys(node)
            if keys is None:
                always.append(position)
                continue
            if is_decided_by_index(node):
                decided.append(position)
            gate = prechecks[0] if prechecks else None
            for kind, value in keys:
                table = filed[kind]
                plain, gates = table.get(value) or table.setdefault(value, ([], {}))
                if gate is None:
                    plain.append(position)
                else:
                    for word in gate:
                        gates.setdefault(word, []).append(position)
        words, prefixes = _Filed.of(filed[WORD]), _Filed.of(filed[PREFIX])
        return cls(
            words=words,
            prefixes=prefixes,
            feeds=_Filed.of(filed[FEED]),
            always=tuple(always),
            decided=frozenset(decided),
            plain_words=frozenset(words.plain),
            gated_words=frozenset(words.gated),
            prefix_needles=tuple(("\x00" + p, p) for p in sorted(filed[PREFIX])),
        )

    def candidates(self, doc: Prepared) -> list[int]:
        """Positions of the rules that might match ``doc``, in rule order."""
        tokens = doc.all_tokens()
        words = self.words
        found = set(chain.from_iterable(map(words.plain.__getitem__, tokens & self.plain_words)))
        update = found.update
        for gates in map(words.gated.__getitem__, tokens & self.gated_words):
            by_word = gates.by_word  # Gates.select, inlined: this loop is the hot one
            for word in gates.words & tokens:
                update(by_word[word])
        if self.prefix_needles:
            for prefix in self._prefix_keys(doc, tokens):
                self.prefixes.select(prefix, tokens, found)
        for value in doc.feeds:
            self.feeds.select(value, tokens, found)
        found.update(self.always)
        return sorted(found)

    def _prefix_keys(self, doc: Prepared, tokens: frozenset[str]) -> list[str]:
        needles = self.prefix_needles
        if len(needles) <= _SEARCHED_PREFIXES:
            # A word starts with a prefix key exactly where NUL + key stands in the
            # NUL-joined words (see FieldText.joined): a C-speed search per key beats
            # slicing every word of the item while such keys are few.
            joined = doc.all_joined()
            return [prefix for needle, prefix in needles if needle in joined]
        heads4 = set(map(_HEAD4, tokens))
        heads = heads4.union(map(_HEAD3, heads4))  # not update(): that would iterate a growing set
        prefixes = self.prefixes
        return [h for h in heads if h in prefixes.plain or h in prefixes.gated]
