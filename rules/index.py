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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter

from rules.compile import Prepared
from rules.parse import And, Feed, Near, Node, Not, Or, Seq, Url, is_wildcard
from rules.text import fold

# Prefix keys are cut to 3 or 4 characters, so an item only has to look up the
# first 3 and the first 4 characters of each of its words.
PREFIX_MIN = 3
PREFIX_MAX = 4
_HEAD3 = itemgetter(slice(0, 3))
_HEAD4 = itemgetter(slice(0, 4))

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


def _word_cost(word: str) -> float:
    if word in _COMMON:
        return 50.0
    return 8.0 / max(1, len(word))


def _key_cost(key: Key) -> float:
    kind, value = key
    if kind == WORD:
        return _word_cost(value)
    if kind == PREFIX:
        return 24.0 / len(value)
    return 2.0


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
    operations before evaluating the rule itself.
    """
    if not isinstance(node, And):
        return extract_keys(node), ()
    options = [k for k in (extract_keys(c) for c in node.children) if k is not None]
    if not options:
        return None, ()
    options.sort(key=_set_cost)
    chosen = options[0]
    rest = [
        frozenset(value for _, value in keys)
        for keys in options[1:]
        if keys != chosen and all(kind == WORD for kind, _ in keys)
    ]
    return chosen, tuple(rest)


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
    return min(options, key=_set_cost)


@dataclass(slots=True)
class TermIndex:
    """Rule positions filed under their keys, plus the rules that must always run."""

    words: dict[str, list[int]]
    prefixes: dict[str, list[int]]
    feeds: dict[str, list[int]]
    always: list[int]
    prechecks: list[tuple[frozenset[str], ...]]

    @classmethod
    def build(cls, nodes: Iterable[Node]) -> TermIndex:
        index = cls({}, {}, {}, [], [])
        keyed = []
        for node in nodes:
            keys, prechecks = rule_keys(node)
            keyed.append(keys)
            index.prechecks.append(prechecks)
        tables = {WORD: index.words, PREFIX: index.prefixes, FEED: index.feeds}
        for position, keys in enumerate(keyed):
            if keys is None:
                index.always.append(position)
                continue
            for kind, value in keys:
                tables[kind].setdefault(value, []).append(position)
        return index

    def candidates(self, doc: Prepared) -> list[int]:
        """Positions of the rules that might match ``doc``, in rule order."""
        found: set[int] = set(self.always)
        words = self.words
        tokens = doc.all_tokens()
        for token in tokens & words.keys():
            found.update(words[token])
        if self.prefixes:
            prefixes = self.prefixes
            # Slicing a word shorter than 3 or 4 yields the word itself: a harmless extra key.
            heads = set(map(_HEAD3, tokens))
            heads.update(map(_HEAD4, tokens))
            for head in heads & prefixes.keys():
                found.update(prefixes[head])
        if self.feeds:
            for value in doc.feeds:
                found.update(self.feeds.get(value, ()))
        prechecks = self.prechecks
        passed = []
        for position in sorted(found):
            for required in prechecks[position]:
                if tokens.isdisjoint(required):
                    break
            else:
                passed.append(position)
        return passed
