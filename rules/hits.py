"""What a hit says about itself: the rule, the matched words, a marked snippet."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

SNIPPET_CHARS = 300
_CONTEXT_BEFORE = 80


@dataclass(frozen=True, slots=True)
class MatchedTerm:
    """One matched word or phrase, exactly as it stands in the document.

    ``start``/``end`` are character offsets into the field's text; for the
    multi-valued fields (``category``, ``feed``) that text is the values joined
    by newlines.
    """

    field: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Snippet:
    """At most 300 characters around the first match; ``marks`` are spans to emphasise."""

    text: str
    marks: tuple[tuple[int, int], ...]

    def render(self, before: str = "*", after: str = "*") -> str:
        """The snippet with each mark wrapped, e.g. ``*CSTO*`` (Slack bold)."""
        parts: list[str] = []
        cursor = 0
        for start, end in self.marks:
            parts.append(self.text[cursor:start])
            parts.append(f"{before}{self.text[start:end]}{after}")
            cursor = end
        parts.append(self.text[cursor:])
        return "".join(parts)


Explanation = tuple[tuple[MatchedTerm, ...], Snippet]


class Hit:
    """One rule that fired on one item, with the words that made it fire and a snippet.

    Matching only decides *which* rules fire; quoting the matched words and cutting
    the snippet costs more than the match itself, and callers that only count hits
    (backtests, benchmarks) never look.  So a hit made by the engine carries a
    function and its arguments that explain it, run once on first access to
    ``terms`` or ``snippet``.  From the outside a hit is an immutable value
    (read-only properties); equality and hashing compare ``rule``, ``terms`` and
    ``snippet``.
    """

    __slots__ = ("_args", "_explain", "_rule", "_snippet", "_terms")

    _rule: str
    _terms: tuple[MatchedTerm, ...] | None
    _snippet: Snippet | None
    _explain: Callable[..., Explanation] | None
    _args: tuple[object, ...]

    def __init__(self, rule: str, terms: tuple[MatchedTerm, ...], snippet: Snippet) -> None:
        self._rule = rule
        self._terms = terms
        self._snippet = snippet
        self._explain = None
        self._args = ()

    @classmethod
    def explained_later(cls, rule: str, explain: Callable[..., Explanation], *args: object) -> Hit:
        """A hit whose terms and snippet ``explain(*args)`` computes on first access."""
        hit = cls.__new__(cls)
        hit._rule = rule
        hit._terms = hit._snippet = None
        hit._explain = explain
        hit._args = args
        return hit

    def _resolve(self) -> None:
        explain = self._explain
        if explain is not None:
            self._terms, self._snippet = explain(*self._args)
            self._explain = None
            self._args = ()  # drop the item it held on to

    @property
    def rule(self) -> str:
        return self._rule

    @property
    def terms(self) -> tuple[MatchedTerm, ...]:
        if self._terms is None:
            self._resolve()
        assert self._terms is not None
        return self._terms

    @property
    def snippet(self) -> Snippet:
        if self._snippet is None:
            self._resolve()
        assert self._snippet is not None
        return self._snippet

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return (self._rule, self.terms, self.snippet) == (other._rule, other.terms, other.snippet)

    def __hash__(self) -> int:
        return hash((self._rule, self.terms, self.snippet))

    def __repr__(self) -> str:
        return f"Hit(rule={self._rule!r}, terms={self.terms!r}, snippet={self.snippet!r})"


_CHUNK = re.compile(r"\S+")
_SPACE = re.compile(r"\s")


def make_snippet(text: str, spans: list[tuple[int, int]], limit: int = SNIPPET_CHARS) -> Snippet:
    """Cut ``text`` to at most ``limit`` characters around the first span and mark the spans.

    Runs of whitespace collapse to one space; a cut inside the text is shown
    with an ellipsis, and cuts fall between words where the words allow it.
    """
    spans = sorted(spans)
    window_start = 0
    if spans and spans[0][0] > _CONTEXT_BEFORE:
        # Start a little before the first match, at the beginning of a word.
        window_start = spans[0][0] - _CONTEXT_BEFORE
        # Any whitespace: text split by line breaks alone has no space to find.
        space = _SPACE.search(text, window_start, spans[0][0])
        if space is not None:
            window_start = space.end()
    lead = window_start > 0 and bool(text[:window_start].strip())
    budget = limit - (1 if lead else 0)
    # Walk whitespace-separated chunks; each keeps its original offset, so spans map
    # into the collapsed text without a per-character table.
    pieces: list[str] = []
    starts: list[tuple[int, int, int]] = []  # (original start, original end, snippet start)
    length = 1 if lead else 0
    truncated = False
    for chunk in _CHUNK.finditer(text, window_start):
        word = chunk.group()
        gap = 1 if pieces else 0
        if length + gap + len(word) > budget - 1:  # keep room for the closing ellipsis
            if not pieces:  # one enormous word: cut it
                word = word[: budget - 1 - length]
                pieces.append(word)
                starts.append((chunk.start(), chunk.start() + len(word), length))
                length += len(word)
            truncated = True
            break
        if gap:
            pieces.append(" ")
            length += 1
        starts.append((chunk.start(), chunk.end(), length))
        pieces.append(word)
        length += len(word)
    body = ("…" if lead else "") + "".join(pieces) + ("…" if truncated else "")
    end_of_text = length

    def to_snippet(offset: int, *, is_end: bool) -> int | None:
        for original_start, original_end, snippet_start in starts:
            if original_start <= offset < original_end or (is_end and offset == original_end):
                return snippet_start + (offset - original_start)
            if offset < original_start:  # in the whitespace before this chunk
                return snippet_start - (1 if is_end else 0) if is_end else snippet_start
        return end_of_text if is_end else None

    marks: list[tuple[int, int]] = []
    for start, end in spans:
        s = to_snippet(start, is_end=False)
        if s is None:
            continue
        e = to_snippet(end, is_end=True)
        e = end_of_text if e is None else min(e, end_of_text)
        if marks and s < marks[-1][1]:
            s = marks[-1][1]
        if e > s:
            marks.append((s, e))
    return Snippet(body, tuple(marks))
