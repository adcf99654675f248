"""What a hit says about itself: the rule, the matched words, a marked snippet."""

from __future__ import annotations

import re
from dataclasses import dataclass

SNIPPET_CHARS = 300
_CONTEXT_BEFORE = 80
_ELLIPSIS = "…"


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


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    terms: tuple[MatchedTerm, ...]
    snippet: Snippet


_SPACE = re.compile(r"\s+")


def make_snippet(text: str, spans: list[tuple[int, int]], limit: int = SNIPPET_CHARS) -> Snippet:
    """Cut ``text`` to at most ``limit`` characters around the first span and mark the spans.

    Runs of whitespace collapse to one space; a cut inside the text is shown
    with an ellipsis, and cuts fall between words where possible.
    """
    if not spans:
        return Snippet(_SPACE.sub(" ", text.strip())[:limit], ())
    spans = sorted(spans)
    first_start = spans[0][0]
    window_start = max(0, first_start - _CONTEXT_BEFORE)
    if window_start > 0:
        space = text.rfind(" ", window_start - 20, first_start)
        window_start = space + 1 if space >= window_start - 20 and space != -1 else window_start
    # Collapse whitespace while keeping a map from original offsets to snippet offsets.
    out: list[str] = []
    mapping: dict[int, int] = {}
    length = 0
    lead = window_start > 0
    if lead:
        out.append(_ELLIPSIS)
        length = 1
    budget = limit - 1  # room for a trailing ellipsis
    i = window_start
    in_space = lead is False
    truncated = False
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            if not in_space:
                if length >= budget:
                    truncated = True
                    break
                mapping[i] = length
                out.append(" ")
                length += 1
                in_space = True
            else:
                mapping[i] = length
            i += 1
            continue
        if length >= budget:
            truncated = True
            break
        in_space = False
        mapping[i] = length
        out.append(ch)
        length += 1
        i += 1
    mapping[i] = length
    body = "".join(out)
    if truncated:
        # Prefer to stop between words.
        cut = body.rfind(" ")
        if cut > len(body) // 2:
            body = body[:cut]
        body = body.rstrip() + _ELLIPSIS
    body_limit = len(body) - (1 if truncated else 0)
    marks: list[tuple[int, int]] = []
    for start, end in spans:
        if start < window_start or start not in mapping:
            continue
        s = mapping[start]
        e = mapping.get(end, body_limit)
        e = min(e, body_limit)
        if e <= s:
            continue
        if marks and s < marks[-1][1]:
            s = marks[-1][1]
            if e <= s:
                continue
        marks.append((s, e))
    return Snippet(body, tuple(marks))
