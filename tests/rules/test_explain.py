"""Hits explain themselves: matched terms with offsets, a marked snippet; warnings."""

from __future__ import annotations

import pytest

from rules import Document, Hit, MatchedTerm, RuleSpec, compile_rules
from rules.hits import make_snippet

ITEM = Document(
    title="Armenia and the CSTO",
    summary="Yerevan weighs its alliances.",
    content="Pashinyan expressed his intentions to withdraw from the CSTO, officials said.",
    url="https://www.Reuters.com/world/armenia",
    feeds=("Reuters World", "world"),
)


def only_hit(query: str, doc: Document = ITEM) -> Hit:
    (hit,) = compile_rules([RuleSpec("r", query)]).match(doc)
    return hit


def test_terms_quote_the_document_with_offsets() -> None:
    hit = only_hit('"withdraw from the csto" OR title:csto')
    assert hit.terms == (
        MatchedTerm("title", "CSTO", 16, 20),
        MatchedTerm("content", "withdraw from the CSTO", 38, 60),
    )
    for term in hit.terms:
        text = ITEM.title if term.field == "title" else ITEM.content
        assert text[term.start : term.end] == term.text


def test_negated_and_false_branches_are_not_marked() -> None:
    hit = only_hit("(CSTO OR Yerevan) NOT sport OR (NATO AND Pashinyan)")
    assert {t.text for t in hit.terms} == {"CSTO", "Yerevan"}


def test_url_and_feed_terms() -> None:
    hit = only_hit("url:reuters.com AND feed:world")
    assert MatchedTerm("url", "Reuters.com", 12, 23) in hit.terms
    assert MatchedTerm("feed", "world", 14, 19) in hit.terms


def test_snippet_prefers_the_body_and_marks_every_match() -> None:
    hit = only_hit("CSTO AND withdraw*")
    assert hit.snippet.text == ITEM.content
    marked = [hit.snippet.text[s:e] for s, e in hit.snippet.marks]
    assert marked == ["withdraw", "CSTO"]
    assert hit.snippet.render() == (
        "Pashinyan expressed his intentions to *withdraw* from the *CSTO*, officials said."
    )


def test_snippet_of_a_long_text_is_cut_around_the_first_match() -> None:
    text = "lorem ipsum " * 60 + "the CSTO summit\n\n  opened " + "dolor sit " * 60
    start = text.index("CSTO")
    snippet = make_snippet(text, [(start, start + 4)])
    assert len(snippet.text) <= 300
    assert snippet.text.startswith("…") and snippet.text.endswith("…")
    ((s, e),) = snippet.marks
    assert snippet.text[s:e] == "CSTO"
    assert "summit opened" in snippet.text  # whitespace collapsed


@pytest.mark.parametrize("separator", ["\n", "\t", "\u00a0"])
def test_snippet_starts_at_a_word_when_words_are_split_by_other_whitespace(
    separator: str,
) -> None:
    text = separator.join(["paragraphs"] * 30 + ["CSTO"])
    snippet = make_snippet(text, [(len(text) - 4, len(text))])
    assert snippet.text.startswith("…paragraphs paragraphs"), snippet.text[:20]
    ((s, e),) = snippet.marks
    assert snippet.text[s:e] == "CSTO"


def test_snippet_marks_are_sorted_and_disjoint() -> None:
    text = "alpha beta gamma delta"
    snippet = make_snippet(text, [(6, 16), (0, 5), (11, 16)])
    assert snippet.marks == ((0, 5), (6, 16))


@pytest.mark.parametrize(
    ("query", "warning"),
    [
        ("CSTO AND NOT CSTO", "can never match"),
        ("CSTO -(NATO OR CSTO)", "can never match"),
        ("title:CSTO AND NOT CSTO", "can never match"),  # CSTO is looked for in the title too
        ("case:US -us", "can never match"),  # -us excludes "US" as well
        ("Pashinián -pashinian", "can never match"),
        ('case:"New York" AND NOT "new york"', "can never match"),
        ("NOT sport", "matches nearly every item"),
        ("CSTO OR NOT sport", "matches nearly every item"),
    ],
)
def test_warnings(query: str, warning: str) -> None:
    ruleset = compile_rules([RuleSpec("r", query, line=4)])
    (found,) = ruleset.warnings
    assert found.rule == "r" and found.line == 4 and found.message.startswith(warning)


def test_sound_rules_have_no_warnings() -> None:
    assert compile_rules([RuleSpec("r", "CSTO NOT sport"), RuleSpec("s", "a OR b")]).warnings == ()


@pytest.mark.parametrize(
    ("query", "title", "content"),
    [
        ("CSTO AND NOT title:CSTO", "summit", "CSTO"),  # the body may have it
        ("us -case:US", "tell us", ""),  # "us" in lower case is not excluded
        ("case:US -case:us", "US", ""),
    ],
)
def test_excluding_a_narrower_term_is_no_warning(query: str, title: str, content: str) -> None:
    ruleset = compile_rules([RuleSpec("r", query)])
    assert ruleset.warnings == ()
    assert [h.rule for h in ruleset.match(Document(title=title, content=content))] == ["r"]


def test_rule_without_positive_term_is_still_matched_by_the_index() -> None:
    ruleset = compile_rules([RuleSpec("a", "CSTO"), RuleSpec("b", "NOT sport")])
    assert [h.rule for h in ruleset.match(Document(title="weather"))] == ["b"]
