"""The fast tokenizer says exactly what the word regex plus per-word folding says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.text import FOLDED_IN_PLACE, fold, folds_in_place, tokenize, word_pattern


def reference(text: str) -> list[str]:
    """One regex match at a time, each folded on its own: the definition."""
    return [fold(word) for word in word_pattern(text).findall(text)]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("ascii", "The CSTO's summit, in Yerevan (2024): x_y?"),
        ("curly quotes and dashes", "“Withdraw” — Pashinyan’s plan…\u00a0now"),
        ("accents", "Pashinián met Müller in São Paulo"),
        ("letters folding to several", "Straße ǅemal İstanbul ﬁnance ſ"),
        ("strokes", "Wałęsa Sørensen Kılıçdaroğlu Đoković Guðni ŁÓDŹ"),
        ("strokes among cyrillic", "Wałęsa и Łódź"),
        ("latin and a mark", "Pashinián e\u0301 café"),
        ("decomposed accent", "Pashinia\u0301n"),
        ("cyrillic and armenian", "ОДКБ и Армения ՀԱՊԿ"),
        ("cjk", "北京的ОДКБ summit 会议"),
        ("full width", "ＣＳＴＯ　ｓｕｍｍｉｔ"),
        ("compatibility forms", "½ x² ﬁnance Straße"),
        ("lone combining mark", "a \u0301 b"),
        ("arabic harakat", "مُحَمَّد"),
        ("hebrew points", "עִבְרִית שָׁלוֹם \ufb2a"),
        ("devanagari", "हिन्दी समाचार"),
        ("empty", ""),
        ("only punctuation", "“ — …"),
    ],
)
def test_tokenize_matches_the_reference(name: str, text: str) -> None:
    assert tokenize(text) == reference(text), name


# Letters from every script the engine names, marks, CJK, compatibility forms, punctuation.
ALPHABET = st.sampled_from(
    list("aZ_9 ,.?'-\n\t")
    + list("éÉüßİıſǅæøÅŁ\u0301\u0308\u064e\u094d\u200d")
    + list("ДжЁՀաΣςσ\u03c2محनहि")
    + list("北京会议のカ")
    + list("½²ﬁＣｓ①\ufe70\u00a8“”’—…\u00a0")
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=40).map("".join))
def test_tokenize_matches_the_reference_on_random_text(text: str) -> None:
    assert tokenize(text) == reference(text)


# The same without Chinese and Japanese, so the split() path for other scripts is
# exercised on its own (a CJK character sends the whole text to the regex).
ALPHABETIC = st.sampled_from(
    list("aZ_9 ,.?'-\n\t\x1c\x85")
    + list("éÉüßİıſǅæøÅŁ\u0301\u0308\u064e\u094d\u200c\u200d")
    + list("ДжЁՀաΣςσ\u03c2محनहि«»،؟।")
    + list("½²ﬁＣｓ①\ufe70\u00a8“”’—…\u00a0\u2009\u3000\ud800")
)


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABETIC, max_size=40).map("".join))
def test_tokenize_matches_the_reference_on_random_alphabetic_text(text: str) -> None:
    assert tokenize(text) == reference(text)


# Chinese and Japanese text, mostly of characters that fold in place (one pass over the
# whole folded text), with some that do not (the text then goes word by word).
CJK_TEXT = st.sampled_from(
    list("北京会议的年月日のカガがー・")
    + list("aZ9 ,.\n")
    + list("　、。「」『』（）！？：；，．＂＃／［］｛｝～“”‘’…—·\u00a0\u2009\u200b")
    + list("ＣＳＴＯｓ０１")
    + list("ｶﾞ゛゜\u3099々〸㈱①½éÅД\u0301\u200d")
)


@settings(max_examples=600, deadline=None)
@given(st.lists(CJK_TEXT, max_size=40).map("".join))
def test_tokenize_matches_the_reference_on_random_cjk_text(text: str) -> None:
    assert tokenize(text) == reference(text)


def test_every_character_said_to_fold_in_place_does() -> None:
    """Including every unified ideograph, which the module takes on trust."""
    for first, last in FOLDED_IN_PLACE:
        for code in range(first, last + 1):
            assert folds_in_place(chr(code)), f"U+{code:04X}"


def test_word_characters_that_fold_to_something_else_are_not_folded_in_place() -> None:
    # Half-width katakana and a voicing mark compose with their neighbours; ½ folds to
    # 1⁄2, Ｃ to c,々 stays.  A separator stays one however it would fold (㍿, ，).
    assert [ch for ch in "ｶﾞ\u3099½Ｃ々㍿，" if folds_in_place(ch)] == ["々", "㍿", "，"]
