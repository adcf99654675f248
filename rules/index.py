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
*gated* by its next cheapest word-only part: listed in the key's bucket under
each word of that part, so an item selects the gated rules with one set
intersection per key it holds (see ``Bucket``).  Candidates are a superset of
the rules that match; the property test holds that the result never changes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from rules.compile import Prepared
from rules.frequencies import COUNTS, STORIES
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


class Bucket:
    """The rules filed under one key.

    ``plain`` rules need nothing more from the index.  A rule with a further
    AND-ed part (its rarest other word set) is *gated*: listed under each word of
    that set, so the item's words select the gated rules in one set intersection.
    Positions are kept in tuples of ints, which the garbage collector stops
    tracking (a list it tracks for ever).
    """

    __slots__ = ("gate_words", "gates", "plain")

    def __init__(self, plain: list[int], gates: dict[str, list[int]]) -> None:
        self.plain: tuple[int, ...] = tuple(plain)
        self.gates: dict[str, tuple[int, ...]] = {w: tuple(r) for w, r in gates.items()}
        self.gate_words: frozenset[str] = frozenset(gates)


@dataclass(slots=True)
class TermIndex:
    """Rules filed under their keys (see ``Bucket``), plus the rules that must always run."""

    words: dict[str, Bucket]
    prefixes: dict[str, Bucket]
    feeds: dict[str, Bucket]
    always: list[int]
    short_prefixes: frozenset[str] = frozenset()

    @classmethod
    def build(cls, nodes: Iterable[Node]) -> TermIndex:
        index = cls({}, {}, {}, [])
        filed: dict[Key, tuple[list[int], dict[str, list[int]]]] = {}
        for position, node in enumerate(nodes):
            keys, prechecks = rule_keys(node)
            if keys is None:
                index.always.append(position)
                continue
            gate = prechecks[0] if prechecks else None
            for key in keys:
                plain, gates = filed.get(key) or filed.setdefault(key, ([], {}))
                if gate is None:
                    plain.append(position)
                else:
                    for word in gate:
                        gates.setdefault(word, []).append(position)
        tables = {WORD: index.words, PREFIX: index.prefixes, FEED: index.feeds}
        for (kind, value), (plain, gates) in filed.items():
            tables[kind][value] = Bucket(plain, gates)
        index.short_prefixes = frozenset(k for k in index.prefixes if len(k) < PREFIX_MAX)
        return index

    def candidates(self, doc: Prepared) -> list[int]:
        """Positions of the rules that might match ``doc``, in rule order."""
        tokens = doc.all_tokens()
        words = self.words
        buckets = [words[t] for t in tokens & words.keys()]
        prefixes = self.prefixes
        if prefixes:
            # Keys are the first 4 letters of a wildcard's prefix (3 when it has only 3):
            # slice each word once; a word shorter than 4 yields itself, a harmless extra.
            heads = set(map(_HEAD4, tokens))
            buckets.extend(prefixes[h] for h in heads & prefixes.keys())
            if self.short_prefixes:
                heads3 = set(map(_HEAD3, heads))
                buckets.extend(prefixes[h] for h in heads3 & self.short_prefixes)
        if self.feeds:
            feeds = self.feeds
            buckets.extend(feeds[v] for v in doc.feeds if v in feeds)
        found: set[int] = set(self.always)
        update = found.update
        for bucket in buckets:
            if bucket.plain:
                update(bucket.plain)
            if bucket.gate_words:
                gates = bucket.gates
                for word in bucket.gate_words & tokens:
                    update(gates[word])
        return sorted(found)
