"""Operators typed with a CJK input method (full-width forms) are operators.

ＡＮＤ read as written was searched as the word "and": `CSTO ＯＲ ОДКБ` then required
the word "or", and `ａ ＡＮＤ （ｂ ＯＲ ｃ）` grouped differently from what it says.
"""

from __future__ import annotations

import pytest

from rules import Document, RuleError, RuleSpec, compile_rules, parse_query

LISTS = {"csto": ["CSTO", "ОДКБ"]}

# (full-width query, the ASCII query it means)
SAME_AS_ASCII = [
    ("ＣＳＴＯ ＡＮＤ ｗｉｔｈｄｒａｗ", "CSTO AND withdraw"),
    ("CSTO ＯＲ ОДКБ", "CSTO OR ОДКБ"),
    ("CSTO ＮＯＴ sport", "CSTO NOT sport"),
    ("Pashinyan ＮＥＡＲ／５ CSTO", "Pashinyan NEAR/5 CSTO"),
    ("Pashinyan ＯＮＥＡＲ／１２ CSTO", "Pashinyan ONEAR/12 CSTO"),
    ("ａ ＡＮＤ （ｂ ＯＲ ｃ）", "a AND (b OR c)"),
    ("＂withdraw from＂ ＮＥＡＲ／３ CSTO", '"withdraw from" NEAR/3 CSTO'),
    ("CSTO －sport", "CSTO -sport"),
    ("CSTO －（a ＯＲ b）", "CSTO -(a OR b)"),
    ("ｔｉｔｌｅ：CSTO", "title:CSTO"),
    ("ｔｉｔｌｅ：（CSTO ＯＲ NATO）", "title:(CSTO OR NATO)"),
    ("ＣＡＳＥ：US", "case:US"),
    ("＠ｃｓｔｏ ＡＮＤ withdraw", "@csto AND withdraw"),
    ("北京 ＡＮＤ（中国 ＯＲ 上海）", "北京 AND(中国 OR 上海)"),
]


@pytest.mark.parametrize(("typed", "meant"), SAME_AS_ASCII)
def test_full_width_operators_mean_what_their_ascii_forms_mean(typed: str, meant: str) -> None:
    assert parse_query(typed, lists=LISTS) == parse_query(meant, lists=LISTS)


def test_full_width_or_finds_either_word() -> None:
    ruleset = compile_rules([RuleSpec("r", "NATO ＯＲ ОДКБ")])
    assert [hit.rule for hit in ruleset.match(Document(title="Пашинян и ОДКБ"))] == ["r"]


@pytest.mark.parametrize(
    ("typed", "meant"), [("ａｎｄ", "and"), ("ｏｒ", "or"), ("ｎｏｔ", "not"), ("ｎｅａｒ", "near")]
)
def test_full_width_lower_case_stays_a_word_like_its_ascii_form(typed: str, meant: str) -> None:
    assert parse_query(f"CSTO {typed} x") == parse_query(f"CSTO {meant} x")


def test_full_width_wildcard_marks_stay_punctuation() -> None:
    # ？ is the question mark of Chinese and Japanese text: read as a wildcard it would
    # refuse `谁是赢家？`; ＊ follows it, so both must be typed as * and ?.
    assert parse_query("ｗｉｔｈｄｒａｗ＊") == parse_query("withdraw")
    assert parse_query("谁是赢家？") == parse_query("谁是赢家")


def test_a_list_named_in_full_width_is_still_found_as_written() -> None:
    lists = {"ｃｓｔｏ": ["CSTO"]}
    assert parse_query("＠ｃｓｔｏ", lists=lists) == parse_query("CSTO")


# (query, message, column, the caret line under the query as a terminal shows it)
REFUSED = [
    ("ａ ＡＮＤ", "expected a term after AND", 6, " " * 9 + "^"),
    ("ＯＲ CSTO", "expected a term before OR", 1, "^"),
    ("北京 ＡＮＤ （中国", "unbalanced parenthesis opened at column 8", 11, " " * 18 + "^"),
    ("a ＮＥＡＲ／５ｘ b", "NEAR needs a distance in words, like NEAR/5", 3, " " * 2 + "^"),
    ("a ＮＥＡＲ／０ b", "NEAR distance must be between 1 and 1000", 3, " " * 2 + "^"),
    ("ＣＳＴＯ ＡＮＤ ＂new york", "unterminated phrase opened at column 10", 10, " " * 16 + "^"),
    ("ｆｏｏ：ｂａｒ", "unknown field 'ｆｏｏ'", 1, "^"),
    ("＠ｎａｔｏ", "unknown list @ｎａｔｏ (lists: @csto)", 1, "^"),
]


@pytest.mark.parametrize(("query", "message", "column", "caret"), REFUSED)
def test_full_width_mistakes_point_at_the_column_as_written(
    query: str, message: str, column: int, caret: str
) -> None:
    with pytest.raises(RuleError) as caught:
        parse_query(query, lists=LISTS)
    assert caught.value.message.startswith(message)
    assert caught.value.column == column
    assert caught.value.render().splitlines()[-2:] == ["  " + query, "  " + caret]
