"""Every bad query is refused with a message an editor can act on, pointing at the column."""

from __future__ import annotations

import pytest

from rules import Document, RuleError, RuleSetError, RuleSpec, compile_rules, parse_query

LISTS = {"csto": ["CSTO", "ОДКБ"], "broken": ["ab*"]}

# (name, query, message, column)
BAD_QUERIES = [
    ("empty", "", "empty query", 1),
    ("dangling AND", "CSTO AND", "expected a term after AND", 9),
    ("dangling OR", "CSTO OR", "expected a term after OR", 8),
    ("double OR", "a OR OR b", "expected a term after OR", 6),
    ("leading OR", "OR b", "expected a term before OR", 1),
    ("dangling NOT", "CSTO NOT", "expected a term after NOT", 9),
    ("dangling minus", "CSTO -", "a lone '-' excludes nothing", 6),
    ("minus before paren", "a -", "a lone '-' excludes nothing", 3),
    ("unclosed paren", "CSTO (a OR b", "unbalanced parenthesis opened at column 6", 13),
    ("stray close", "a OR b)", "unexpected ')' with no matching '('", 7),
    ("empty parens", "a ()", "empty parentheses", 4),
    ("short wildcard", "wi*", "wildcard needs at least 3 letters before *", 3),
    ("short ? wildcard", "a AND ab?c", "wildcard needs at least 3 letters before ?", 9),
    ("leading wildcard", "*tion", "wildcard needs at least 3 letters before *", 1),
    ("unterminated phrase", 'a "new york', "unterminated phrase opened at column 3", 3),
    ("unknown field", "foo:bar", "unknown field 'foo'", 1),
    ("NEAR without distance", "a NEAR b", "NEAR needs a distance in words, like NEAR/5", 3),
    ("NEAR zero", "a NEAR/0 b", "NEAR distance must be between 1 and 1000", 3),
    ("NEAR on AND group", "(a AND b) NEAR/3 c", "NEAR works on terms, phrases", 11),
    ("chained NEAR", "a NEAR/3 b NEAR/3 c", "chained NEAR is ambiguous", 12),
    ("field without term", "title: CSTO", "expected a term after title:", 7),
    ("unknown list", "@nato", "unknown list @nato (lists: @broken, @csto)", 1),
    ("bad list entry", "x @broken", "in list @broken, entry 'ab*': wildcard needs at least 3", 3),
    ("punctuation only", "a AND !!!", "'!!!' has no letters or digits to search for", 7),
    ("empty phrase", 'a ""', "empty phrase", 3),
    ("group starting with OR", "a AND (OR b)", "expected a term before OR", 8),
    ("group starting with NEAR", "(NEAR/3 b)", "expected a term before NEAR/3", 2),
    ("decomposed accent counts once", "e\u0301t*", "wildcard needs at least 3 letters", 4),
    ("NEAR with letters in distance", "a NEAR/5x b", "NEAR needs a distance in words", 3),
    ("NEAR with negative distance", "a NEAR/-1 b", "NEAR needs a distance in words", 3),
    ("ONEAR with word distance", "a ONEAR/five b", "ONEAR needs a distance in words", 3),
    ("NEAR on NOT", "a NEAR/3 NOT b", "NEAR works on terms, phrases", 10),
    ("NEAR on -term", "a ONEAR/3 -b", "ONEAR works on terms, phrases", 11),
]


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [case[1:] for case in BAD_QUERIES],
    ids=[case[0] for case in BAD_QUERIES],
)
def test_bad_query_names_the_problem_and_column(query: str, message: str, column: int) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query, lists=LISTS)
    assert caught.value.message.startswith(message)
    assert caught.value.column == column


def test_render_puts_the_caret_under_the_column() -> None:
    with pytest.raises(RuleSetError) as caught:
        compile_rules([RuleSpec("x", "CSTO AND", line=12)])
    (error,) = caught.value.errors
    assert error.render() == (
        "rule 'x' (line 12): expected a term after AND\n  CSTO AND\n          ^"
    )


def test_render_shows_the_right_line_of_a_multiline_query() -> None:
    error = RuleError("boom", query="a OR\n  (b AND", column=8, rule="r")
    assert error.render().splitlines()[1:] == ["    (b AND", "    ^"]


def test_compile_rules_lists_every_bad_rule_in_order() -> None:
    specs = [
        RuleSpec("good", "CSTO", line=1),
        RuleSpec("bad1", "a AND", line=2),
        RuleSpec("bad2", "(b", line=3),
        RuleSpec("good", "dup", line=4),
    ]
    with pytest.raises(RuleSetError) as caught:
        compile_rules(specs)
    errors = caught.value.errors
    assert [(e.rule, e.line) for e in errors] == [("bad1", 2), ("bad2", 3), ("good", 4)]
    assert "duplicate rule name" in errors[2].message
    text = str(caught.value)
    assert text.startswith("3 invalid rules:")
    assert "rule 'bad1' (line 2)" in text and "rule 'bad2' (line 3)" in text


def test_rule_errors_are_value_errors() -> None:
    assert issubclass(RuleError, ValueError) and issubclass(RuleSetError, ValueError)


# (query, column of the problem, the caret line a terminal must show under the query)
WIDE_AND_ZERO_WIDTH = [
    ("北京 AND (中国 OR )", 15, " " * 18 + "^"),  # Han characters fill two columns
    ("北京中国 AND wi*", 12, " " * 15 + "^"),
    ("😀x AND wi*", 10, " " * 10 + "^"),  # so does an emoji
    ("e\u0301te\u0301 AND wi*", 13, " " * 10 + "^"),  # combining accents fill none
    ("CSTO\u200b AND wi*", 13, " " * 11 + "^"),  # neither does a zero-width space
    ("Пашинян AND ՀԱՊԿ AND wi*", 24, " " * 23 + "^"),  # Cyrillic, Armenian: one each
]


@pytest.mark.parametrize(("query", "column", "caret"), WIDE_AND_ZERO_WIDTH)
def test_caret_lines_up_under_wide_and_zero_width_characters(
    query: str, column: int, caret: str
) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query)
    assert caught.value.column == column
    assert caught.value.render().splitlines()[-1] == "  " + caret


def refused(query: str) -> RuleError:
    with pytest.raises(RuleError) as caught:
        parse_query(query)
    return caught.value


def test_a_long_query_line_is_shown_around_the_caret() -> None:
    # 100,000 characters on one line printed whole, plus a caret line as long again.
    query = "x" * 50_000 + " AND wi* AND " + "y" * 50_000
    error = refused(query)
    star = query.index("*")
    assert error.column == star + 1
    assert error.render().splitlines()[1:] == [
        "  …" + query[star - 60 : star + 60] + "…",
        "  " + " " * 61 + "^",
    ]


def test_a_long_query_line_is_cut_only_where_it_goes_on() -> None:
    start = refused("wi* " + "a " * 100)
    # The two columns before the caret, the caret's own and 59 after it.
    assert start.render().splitlines()[1:] == ["  " + ("wi* " + "a " * 100)[:62] + "…", "    ^"]
    end = refused("a " * 100 + "AND")
    assert end.render().splitlines()[1:] == [
        "  …" + ("a " * 100 + "AND")[-60:],
        "  " + " " * 61 + "^",
    ]


def test_a_window_counts_columns_so_the_caret_stays_under_wide_characters() -> None:
    # 北 fills two columns: 26 of them and " AND wi" fill 59, a 27th would pass 60.
    error = refused("北" * 50_000 + " AND wi*")
    assert error.render().splitlines()[1:] == [
        "  …" + "北" * 26 + " AND wi*",
        "  " + " " * 60 + "^",
    ]


def test_a_window_does_not_begin_with_accents_cut_from_their_letter() -> None:
    error = refused("e\u0301" * 1000 + " wi*")
    shown = error.render().splitlines()[1]
    assert shown == "  …" + "e\u0301" * 57 + " wi*"


def test_a_window_of_characters_that_fill_no_column_is_bounded_too() -> None:
    error = refused("a" + "\u0301" * 100_000 + " wi*")
    shown = error.render().splitlines()[1]
    assert shown.startswith("  …") and len(shown) < 300


def test_a_query_line_of_up_to_120_columns_is_shown_whole() -> None:
    query = "a " * 58 + "AND "  # 120 columns
    assert refused(query).render().splitlines()[1:] == ["  " + query, "  " + " " * 120 + "^"]
    longer = "a " * 59 + "AND"  # 121
    assert refused(longer).render().splitlines()[1] == "  …" + longer[-60:]


def test_only_the_line_holding_the_column_is_windowed() -> None:
    error = RuleError("boom", query="a OR\n" + "b " * 500 + "(", column=1006)
    assert error.render().splitlines()[1:] == ["  …" + "b " * 30 + "(", "  " + " " * 61 + "^"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("title:-x", "expected a term after title:"),
        ("title:", "expected a term after title:"),
        ("title: x", "expected a term after title: (no space between)"),
    ],
)
def test_space_hint_only_when_a_space_follows_the_field(query: str, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query)
    assert caught.value.message == message


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    query = "(" * 200 + "x" + ")" * 200
    with pytest.raises(RuleError) as caught:
        parse_query(query)
    assert caught.value.message == "nested more than 50 levels deep"
    assert caught.value.column == 52  # the first '(' beyond the limit
    with pytest.raises(RuleError) as caught:
        parse_query("title:" * 200 + "x")
    assert caught.value.message == "nested more than 50 levels deep"


def test_fifty_levels_compile_and_match() -> None:
    query = "z"
    for i in range(50):
        query = f"(w{i} {'OR' if i % 2 else 'AND'} {query})"
    ruleset = compile_rules([RuleSpec("r", query)])
    assert [h.rule for h in ruleset.match(Document(title="w49 w48"))] == ["r"]


def test_a_long_run_of_nots_is_read_without_recursion() -> None:
    ruleset = compile_rules([RuleSpec("r", "NOT " * 5001 + "sport AND CSTO")])
    assert [h.rule for h in ruleset.match(Document(title="CSTO"))] == ["r"]
    assert ruleset.match(Document(title="CSTO sport")) == []


def test_wildcard_prefix_counts_letters_as_compared() -> None:
    # The ligature is the two letters "fi": "ﬁn*" is as wide as "fin*".
    ruleset = compile_rules([RuleSpec("r", "ﬁn*")])
    assert [h.rule for h in ruleset.match(Document(title="Finance"))] == ["r"]
