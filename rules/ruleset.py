"""A compiled set of watch rules: validate once, then match items fast and explain hits."""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from rules.compile import Matcher, Occurrence, Prepared, compile_node
from rules.document import Document
from rules.errors import RuleError, RuleSetError, RuleWarning
from rules.hits import Explanation, Hit, MatchedTerm, Snippet, make_snippet
from rules.index import TermIndex
from rules.parse import And, Feed, Near, Node, Not, Or, Seq, TermCache, Url, parse_query
from rules.text import fold

# The snippet is cut from the body first: alerts show the title on their own.
_SNIPPET_FIELDS = ("summary", "content", "title", "author", "category", "feed", "url")
_FIELD_ORDER = ("title", "summary", "content", "author", "category", "feed", "url")
_TERM_ORDER = {name: i for i, name in enumerate(_FIELD_ORDER)}
MAX_TERMS = 100
_NOTHING: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as configured; ``line`` is the YAML line of its query, for messages."""

    name: str
    query: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    matcher: Matcher


class RuleSet:
    """Compiled rules plus their term index.  Immutable once built; share it freely."""

    def __init__(self, rules: list[_Rule], index: TermIndex, warnings: tuple[RuleWarning, ...]):
        # Two flat lists rather than an object per rule: a large rule set is millions
        # of objects, and every one the garbage collector tracks lengthens its passes.
        self._names = [rule.name for rule in rules]
        self._matchers = [rule.matcher for rule in rules]
        self._index = index
        self._positions = {name: i for i, name in enumerate(self._names)}
        self.warnings = warnings

    def __len__(self) -> int:
        return len(self._names)

    def names(self) -> tuple[str, ...]:
        return tuple(self._names)

    def match(self, doc: Document, *, only: Collection[str] | None = None) -> list[Hit]:
        """Hits for ``doc``, in rule order, evaluating only the rules the index lets through.

        ``only`` restricts matching to the named rules (per-feed rule scoping);
        unknown names are ignored.
        """
        prepared = Prepared(doc)
        if only is not None:
            wanted = {self._positions[n] for n in only if n in self._positions}
            # For a handful of rules it is cheaper to run them than to consult the index.
            if len(wanted) <= 8:
                return self._evaluate(prepared, sorted(wanted), indexed=False)
            candidates = [p for p in self._index.candidates(prepared) if p in wanted]
        else:
            candidates = self._index.candidates(prepared)
        return self._evaluate(prepared, candidates, indexed=True)

    def match_brute_force(self, doc: Document) -> list[Hit]:
        """Every rule evaluated on its own: the reference the index is tested and benchmarked
        against.

        The item is tokenized once (its words, their positions); beyond that nothing
        is shared between rules: the memo of phrase and wildcard occurrences that
        lets candidate rules reuse each other's work is emptied before every rule,
        so this is what "evaluating every rule for every item" costs.
        """
        prepared = Prepared(doc)
        memo = prepared.memo
        hits: list[Hit] = []
        for name, matcher in zip(self._names, self._matchers, strict=True):
            memo.clear()
            if matcher.test(prepared):
                hits.append(Hit.explained_later(name, _explain, matcher, prepared))
        return hits

    def _evaluate(
        self, prepared: Prepared, positions: Iterable[int], *, indexed: bool
    ) -> list[Hit]:
        names = self._names
        matchers = self._matchers
        later = Hit.explained_later
        # Rules the index decides need no evaluation once the index let them through,
        # as long as the words it looked up were only the text's (it looks author and
        # category words up too).
        decided = _NOTHING
        if indexed and prepared.has_only_text_words():
            decided = self._index.decided
        return [
            later(names[p], _explain, matchers[p], prepared)
            for p in positions
            if p in decided or matchers[p].test(prepared)
        ]


def compile_rules(
    specs: Iterable[RuleSpec], *, lists: Mapping[str, Sequence[str]] | None = None
) -> RuleSet:
    """Parse, check and index every rule; raises RuleSetError listing every bad one."""
    # Compiling allocates hundreds of thousands of small objects and no cycles; with
    # the cyclic collector running, each of its passes rescans the growing rule set,
    # which made 100,000 rules take several times longer than 10 x 10,000.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _compile_rules(specs, lists)
    finally:
        if paused:
            gc.enable()


def _compile_rules(specs: Iterable[RuleSpec], lists: Mapping[str, Sequence[str]] | None) -> RuleSet:
    errors: list[RuleError] = []
    warnings: list[RuleWarning] = []
    rules: list[_Rule] = []
    nodes: list[Node] = []
    seen: set[str] = set()
    interned: dict[Node, Matcher] = {}
    terms: TermCache = {}
    for spec in specs:
        if spec.name in seen:
            errors.append(
                RuleError(
                    "duplicate rule name; every rule needs its own",
                    query=spec.query,
                    column=1,
                    rule=spec.name,
                    line=spec.line,
                )
            )
            continue
        seen.add(spec.name)
        try:
            node = parse_query(spec.query, lists=lists, term_cache=terms)
            matcher = compile_node(node, interned, spec.query)
        except RuleError as exc:
            errors.append(exc.for_rule(spec.name, spec.line))
            continue
        warnings.extend(RuleWarning(spec.name, m, spec.line) for m in lint(node))
        rules.append(_Rule(spec.name, matcher))
        nodes.append(node)
    if errors:
        raise RuleSetError(errors, tuple(warnings))
    return RuleSet(rules, TermIndex.build(nodes), tuple(warnings))


# ----------------------------------------------------------------- warnings


def lint(node: Node) -> list[str]:
    """Legal queries that are almost certainly mistakes."""
    messages = []
    if _never_matches(node):
        messages.append("can never match: it requires a term and also excludes it")
    elif not _requires_positive(node):
        messages.append(
            "matches nearly every item: no term is required to be present; "
            "add a positive term (NOT only narrows)"
        )
    return messages


def _requires_positive(node: Node) -> bool:
    if isinstance(node, Seq | Url | Feed | Near):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, And):
        return any(_requires_positive(c) for c in node.children)
    return all(_requires_positive(c) for c in node.children)


def _never_matches(node: Node) -> bool:
    if isinstance(node, And):
        if any(_never_matches(c) for c in node.children):
            return True
        excluded: set[Node] = set()
        for child in node.children:
            if isinstance(child, Not):
                excluded.add(child.child)
                if isinstance(child.child, Or):
                    excluded.update(child.child.children)
        if not excluded:
            return False  # most rules: no NOT, nothing to hash
        required = [c for c in node.children if not isinstance(c, Not)]
        return any(c in excluded for c in required) or any(
            _covers(e, c) for c in required for e in excluded
        )
    if isinstance(node, Or):
        return all(_never_matches(c) for c in node.children)
    if isinstance(node, Near):
        return _never_matches(node.left) or _never_matches(node.right)
    return False


def _covers(excluded: Node, required: Node) -> bool:
    """Whether every occurrence of ``required`` is also one of ``excluded``.

    ``title:CSTO AND NOT CSTO`` and ``case:US -us`` can never match either,
    though the two terms differ as written: the excluded term looks in more
    fields, or ignores the case the required one insists on.
    """
    if not (isinstance(excluded, Seq) and isinstance(required, Seq)):
        return False
    if not set(required.fields) <= set(excluded.fields):
        return False
    if excluded.exact:
        return required.exact and required.tokens == excluded.tokens
    tokens = tuple(fold(t) for t in required.tokens) if required.exact else required.tokens
    return tokens == excluded.tokens


# ----------------------------------------------------------------- explaining


def _explain(matcher: Matcher, doc: Prepared) -> Explanation:
    occurrences: list[Occurrence] = []
    matcher.collect(doc, occurrences)
    # Quoting is the dear part: only the first MAX_TERMS occurrences are quoted, not
    # every one of a word repeated throughout a huge item. Occurrences sort as their
    # terms do (token and feed indexes grow with the offsets they map to); several
    # may quote as one term (a whole link), hence the count of distinct terms.
    quoted: dict[MatchedTerm, None] = {}
    for occurrence in sorted(set(occurrences), key=lambda o: (_TERM_ORDER[o[0]], o[1], o[2])):
        quoted[_to_term(doc, occurrence)] = None
        if len(quoted) == MAX_TERMS:
            break
    terms = sorted(quoted, key=lambda t: (_TERM_ORDER[t.field], t.start, t.end))
    return tuple(terms), _snippet(doc, terms)


def _to_term(doc: Prepared, occurrence: Occurrence) -> MatchedTerm:
    field, start, end = occurrence
    if field == "url":
        url = doc.doc.url
        if len(url) != len(doc.url_folded):  # casefold changed lengths: quote the whole link
            start, end = 0, len(url)
        return MatchedTerm("url", url[start:end], start, end)
    if field == "feed":
        feeds = doc.doc.feeds
        offset = sum(len(f) + 1 for f in feeds[:start])
        return MatchedTerm("feed", feeds[start], offset, offset + len(feeds[start]))
    text = doc.fields[field]
    char_start = text.spans[start][0]
    char_end = text.spans[end][1]
    return MatchedTerm(field, text.text[char_start:char_end], char_start, char_end)


def _snippet(doc: Prepared, terms: list[MatchedTerm]) -> Snippet:
    for field in _SNIPPET_FIELDS:
        spans = [(t.start, t.end) for t in terms if t.field == field]
        if spans:
            return make_snippet(_field_text(doc, field), spans)
    # Only negative terms (e.g. `NOT sport`): show the start of the body.
    for field in _SNIPPET_FIELDS[:3]:
        text = _field_text(doc, field)
        if text.strip():
            return make_snippet(text, [])
    return Snippet("", ())


def _field_text(doc: Prepared, field: str) -> str:
    if field == "url":
        return doc.doc.url
    if field == "feed":
        return "\n".join(doc.doc.feeds)
    return doc.fields[field].text
