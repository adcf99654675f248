"""Whatever an editor types, a query compiles or is refused with a RuleError at a column
inside it: never another exception, never a caret that cannot be drawn, never a wait."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import (
    Document,
    RuleError,
    RuleSet,
    RuleSetError,
    RuleSpec,
    compile_rules,
    parse_list_entry,
)
from rules import parse as parse_module
from rules.errors import SHOWN_AROUND_CARET

LISTS = {"csto": ["CSTO", "ОДКБ", "Collective Security Treaty Organization"]}

# Pieces of the language, look-alikes of it and text that is hard on a tokenizer.
PIECES = [
    "AND", "OR", "NOT", "NEAR/3", "ONEAR/2", "NEAR/0", "NEAR/", "NEAR/99999999999999999999",
    "ＡＮＤ", "ＮＥＡＲ/５", "(", ")", '"', "“", "”", "„", "-", "--", "@", "@csto", "@unknown",
    "title:", "case:", "url:", "feed:", "summary:", "author:", "category:", "content:",
    "foo:", "*", "?", "**", "?*?", "abc*", "abc?", "北京", "北*", "مرحبا", "שָׁלוֹם", "e\u0301",
    "\u0301", "\x00", "\ud800", "\udcff", "😀", "\u200b", "\u200f", "\u202e", "\ufeff", " ",
    "\n", "\t", "\u3000", "CSTO", "csto", "x",
]
piece = st.sampled_from(PIECES)
any_text = st.text(alphabet=st.characters(codec=None), max_size=8)  # surrogates included
query = st.one_of(
    st.lists(st.one_of(piece, any_text), max_size=16).map(" ".join),
    st.lists(piece, max_size=16).map("".join),
    st.text(max_size=40),
)


def check_refusal(error: RuleError) -> None:
    assert 1 <= error.column <= len(error.query) + 1, (error.query, error.column)
    header, shown, caret = error.render().rsplit("\n", 2)
    # The shown line is the query's line that holds the column, or a window of it with
    # … at the ends it cuts, and the caret alone under it.
    assert header and shown.startswith("  ") and caret.strip() == "^"
    lines = error.query.replace("\t", " ").split("\n")
    window = shown[2:].removeprefix("…").removesuffix("…")
    assert shown[2:] in lines or any(window in line for line in lines)
    assert shown[2:] in lines or len(window) <= 8 * SHOWN_AROUND_CARET


def compile_or_refuse(*queries: str) -> RuleSet | RuleSetError:
    specs = [RuleSpec(f"r{i}", q, line=i + 1) for i, q in enumerate(queries)]
    try:
        return compile_rules(specs, lists=LISTS)
    except RuleSetError as exc:
        assert exc.errors and str(exc)
        for error in exc.errors:
            check_refusal(error)
        return exc


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries=st.lists(query, min_size=1, max_size=3))
def test_any_text_compiles_or_is_refused_at_a_column_within_it(queries: list[str]) -> None:
    outcome = compile_or_refuse(*queries)
    if isinstance(outcome, RuleSetError):
        assert {e.rule for e in outcome.errors} <= {f"r{i}" for i in range(len(queries))}
    else:
        assert len(outcome) == len(queries)


@settings(max_examples=150, deadline=None)
@given(entry=st.one_of(st.text(max_size=20), st.lists(piece, max_size=6).map("".join)))
def test_any_list_entry_is_a_term_or_a_rule_error(entry: str) -> None:
    try:
        parse_list_entry(entry)
    except RuleError as exc:
        check_refusal(exc)


NESTED = "(" * 10_000 + "a" + ")" * 10_000

# (query, the refusal's message, or None when it compiles)
AWKWARD = [
    ("ＡＮＤ", "expected a term before AND"),  # the operator, typed in full width
    ("ａｎｄ", None),  # a word, as "and" is
    ("“peace talks” NEAR/5 Armenia", None),
    ("„peace talks“", None),
    ("“peace talks", "unterminated phrase opened at column 1"),
    ("a NEAR/0 b", "NEAR distance must be between 1 and 1000"),
    ("a NEAR/99999999999999999999 b", "NEAR distance must be between 1 and 1000"),
    ("title:title:x", None),
    ("case:case:x", None),
    ("@", "expected a list name after @"),
    ("@unknown", "unknown list @unknown (lists: @csto)"),
    ("-", "a lone '-' excludes nothing"),
    ("**", "wildcard needs at least 3 letters before *"),
    ("?*?", "wildcard needs at least 3 letters before ?"),
    ("\x00", "has no letters or digits to search for"),
    ("a \ud800 b", "has no letters or digits to search for"),
    ("😀 AND", "has no letters or digits to search for"),
    ("北京*", "wildcards work on words of alphabetic scripts"),
    ("a\nb\n(", "expected a term after ("),
    (NESTED, "nested more than 50 levels deep"),
    ("(" * 10_000, "nested more than 50 levels deep"),
    (")" * 10_000, "unexpected ')' with no matching '('"),
    ("NOT " * 10_000 + "a", None),
    ("-" * 100_000 + "a", None),
    ("-" * 100_000, "a lone '-' excludes nothing"),
    ("title:" * 20_000 + "x", "nested more than 50 levels deep"),
    ("-title:" * 20_000 + "x", "expected a term after title:"),
    ("x" * 100_000, None),
    ("abc* " * 20_000, None),
    ('"' + "a " * 50_000 + '"', None),
    ("a OR " * 20_000 + "a", None),
    ("“" * 100_001, "unterminated phrase opened at column 100001"),
    ("@" * 100_000, "unknown list"),
]


@pytest.mark.parametrize(("query", "refused"), AWKWARD, ids=lambda v: ascii(v)[:30])
def test_awkward_queries(query: str, refused: str | None) -> None:
    outcome = compile_or_refuse(query)
    if refused is None:
        assert isinstance(outcome, RuleSet)
    else:
        assert isinstance(outcome, RuleSetError)
        assert refused in outcome.errors[0].message


@pytest.mark.parametrize("digits", ["9" * 5000, "1" + "0" * 4300, "٣" * 5000])
def test_a_near_distance_of_thousands_of_digits_is_out_of_range_not_a_crash(digits: str) -> None:
    # int() refuses strings of more than 4,300 digits with a plain ValueError.
    with pytest.raises(RuleSetError) as refused:
        compile_rules([RuleSpec("r", f"a NEAR/{digits} b")])
    error = refused.value.errors[0]
    assert (error.message, error.column) == ("NEAR distance must be between 1 and 1000", 3)


def test_leading_zeros_do_not_change_a_near_distance() -> None:
    ruleset = compile_rules([RuleSpec("r", "a NEAR/" + "0" * 5000 + "2 b")])
    assert [hit.rule for hit in ruleset.match(Document(title="a x b"))] == ["r"]
    assert ruleset.match(Document(title="a x y b")) == []


class _CountingRun:
    """``_RUN`` that adds up how many characters its matches covered."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.read = 0

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        found = self.pattern.match(text, pos)
        if found:
            self.read += found.end() - found.start()
        return found


@pytest.mark.parametrize(
    "query", ["-" * 3000 + "x", "title:" * 40 + "x" + "-" * 3000, "-title:" * 500 + "x"]
)
def test_lexing_reads_a_run_once_however_many_prefixes_it_has(
    query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Re-reading the rest of the run after each '-' or field: prefix made a 100,000-dash
    # query take 46 s to refuse (quadratic); the lexer must stay linear.
    counting = _CountingRun(parse_module._RUN)
    monkeypatch.setattr(parse_module, "_RUN", counting)
    compile_or_refuse(query)
    assert counting.read <= len(query)
