"""The fast tokenizer says exactly what the word regex plus per-word folding says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.text import (
    FOLDED_IN_PLACE,
    FOLDED_TO_ITSELF,
    fold,
    folds_in_place,
    in_place_fold,
    tokenize,
    word_pattern,
)


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
        ("letters without an ascii fold", "Ærø œuvre ¼ ˆ in Latin text, and Kelvin \u212a"),
        ("cyrillic capitals and short i", "«Йошкар-Ола» — ЁЖИК, Майдан"),
        ("greek accents and final sigma", "Ο ΠΡΩΘΥΠΟΥΡΓΟΣ Μητσοτάκης είπε"),
        ("arabic presentation forms", "\ufefb \ufe8d\ufedf\ufee4"),
        ("hangul syllables and jamo", "한국 \u3131\u314f \u1100\u1161"),
        ("numbers that fold to ideographs", "Ward \u3280 and \u2460"),
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
    + list("æœ¼ˆ\u2044йЙёΆάΣς\ufefb\ufe8d가\u3131\u314f\u1161㊀K\u212aẞ")
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


# Mostly ASCII with a few other characters, the shape of Latin-script news: the
# characters are found by deleting the ASCII (the other texts above are found by regex).
LATIN_NEWS = st.lists(
    st.sampled_from(list("abcXYZ 09,.'-") * 6 + list("æœ¼ˆéÉßİıŁ’—\u00a0йДΣ\u0301\u2044ẞ\u212a")),
    max_size=60,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(LATIN_NEWS)
def test_tokenize_matches_the_reference_on_random_latin_news(text: str) -> None:
    assert tokenize(text) == reference(text)


def test_every_character_said_to_fold_to_itself_does() -> None:
    for first, last in FOLDED_TO_ITSELF:
        for code in range(first, last + 1):
            assert in_place_fold(chr(code)) == chr(code), f"U+{code:04X}"


NEIGHBOURS = ("a", "Z", "é", "ж", "Σ", "ا", "가", "7", "æ")


def test_every_character_folded_in_place_folds_so_inside_any_word() -> None:
    """Each non-ASCII character of the basic plane, between letters of several scripts:
    replacing it by its in-place fold gives what folding the whole word gives."""
    wrong = []
    for code in range(0x80, 0x10000):
        ch = chr(code)
        folded = in_place_fold(ch)
        if folded is None or folded == " ":
            continue
        for left in NEIGHBOURS:
            for right in NEIGHBOURS:
                if fold(left + ch + right) != fold(left) + folded + fold(right):
                    wrong.append(f"U+{code:04X} between {left} and {right}")
    assert wrong == []


def test_separators_fold_to_a_space_and_marks_and_jamo_are_never_folded_in_place() -> None:
    assert [in_place_fold(ch) for ch in "\u00a0—«\u2044"] == [" "] * 4
    assert [in_place_fold(ch) for ch in "\u0301\u064e\u094d\u200d\u3131\u1161北"] == [None] * 7
    assert [in_place_fold(ch) for ch in "ÉйΣ¼æ"] == ["e", "и", "σ", "1\u20444", "æ"]


def test_separators_are_replaced_before_letters_whose_fold_holds_one() -> None:
    # ¼ folds to 1⁄4, and ⁄ on its own is a separator: spacing it after ¼ was replaced
    # would cut "1⁄4" in two, whichever order the characters were found in.
    from rules.text import _tokenize_in_place

    text = "¼ and 1⁄2"
    for found in (["¼", "⁄"], ["⁄", "¼"]):
        assert _tokenize_in_place(text.encode(), found, few=True) == ["1⁄4", "and", "1", "2"]
    assert tokenize(text) == reference(text) == ["1⁄4", "and", "1", "2"]
