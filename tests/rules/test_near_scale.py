"""NEAR on items repeating its words many times: the same hits and terms as the
definition, without comparing every left occurrence with every right one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rules import Document, RuleSpec, compile_rules

# Operands as (query, their occurrences as word spans of the space-separated body).
_OPERANDS = {
    "a": lambda words: [(i, i) for i, w in enumerate(words) if w == "a"],
    "b": lambda words: [(i, i) for i, w in enumerate(words) if w == "b"],
    '"b c"': lambda words: [(i, i + 1) for i in range(len(words) - 1)
                            if words[i:i + 2] == ["b", "c"]],
}


def _reference(words: list[str], left: str, right: str, distance: int,
               ordered: bool) -> set[tuple[int, int]]:
    """The word spans of every operand occurrence in a pair near enough: the definition."""
    spans: set[tuple[int, int]] = set()
    for lf in _OPERANDS[left](words):
        for rt in _OPERANDS[right](words):
            if 1 <= rt[0] - lf[1] <= distance or (not ordered and 1 <= lf[0] - rt[1] <= distance):
                spans.update((lf, rt))
    return spans


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(["a", "b", "c", "x"]), max_size=40),
    left=st.sampled_from(sorted(_OPERANDS)),
    right=st.sampled_from(sorted(_OPERANDS)),
    distance=st.integers(1, 6),
    ordered=st.booleans(),
)
def test_near_hits_and_terms_follow_the_definition(words: list[str], left: str, right: str,
                                                   distance: int, ordered: bool) -> None:
    operator = "ONEAR" if ordered else "NEAR"
    ruleset = compile_rules([RuleSpec("r", f"{left} {operator}/{distance} {right}")])
    expected = _reference(words, left, right, distance, ordered)
    hits = ruleset.match(Document(content=" ".join(words)))
    assert bool(hits) == bool(expected)
    if hits:
        # Single-letter words one space apart: word i starts at character 2 * i.
        assert {(t.start // 2, (t.end - 1) // 2) for t in hits[0].terms} == expected


def test_near_on_an_item_repeating_both_words_tens_of_thousands_of_times() -> None:
    # Every left was compared with every right: 2.5 billion comparisons here, so an
    # item a feed fills with a rule's two words held up matching for ever.
    body = " ".join(["a", "b"] * 50_000)
    first_terms = {
        "a NEAR/5 b": [("a", 0), ("b", 2), ("a", 4)],
        "b ONEAR/1000 a": [("b", 2), ("a", 4), ("b", 6)],  # no b before the first a
        "a NEAR/1 a": None,  # every a is two words from the next
    }
    for query, expected in first_terms.items():
        hits = compile_rules([RuleSpec("r", query)]).match(Document(content=body))
        if expected is None:
            assert hits == []
            continue
        [hit] = hits
        assert len(hit.terms) == 100  # the first hundred, in text order
        assert [(t.text, t.start) for t in hit.terms[:3]] == expected
