"""The one normalizer and tokenizer, shared by queries and documents.

Both sides of a match go through the same two steps, so a query word and a
document word compare equal exactly when an editor would expect them to:

1. *Tokenize* the original text into words.  A word is a run of letters, digits
   and combining marks in any alphabetic script (Latin, Cyrillic, Armenian,
   Greek, Arabic, Devanagari, Hangul, ...).  Chinese and Japanese are written
   without spaces, so each Han / kana character is a token of its own; a query
   "北京" then becomes the two-token phrase 北 京 and matches where those
   characters stand together.
2. *Fold* each word: Unicode NFKC (full-width and compatibility forms), then
   casefold (``Straße`` -> ``strasse``), then drop combining accents
   (``Pashinián`` -> ``pashinian``, ``Müller`` -> ``muller``, Arabic tashkeel)
   and the strokes that no decomposition removes (``Wałęsa`` -> ``walesa``).

Offsets always refer to the original text, so a hit can quote and mark the
words exactly as they stand in the item.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

# Combining marks that belong inside a word.  Python's ``\w`` omits most of them
# (Devanagari vowel signs, the virama, Arabic harakat, decomposed accents), which
# would cut "हिन्दी" or a decomposed "Pashinia\u0301n" into pieces.
_MARKS = (
    "\u0300-\u036f"  # combining diacritical marks (Latin, Greek, Cyrillic accents)
    "\u0483-\u0489"  # Cyrillic combining marks
    "\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"  # Hebrew points
    "\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed"  # Arabic
    "\u0900-\u0903\u093a-\u094f\u0951-\u0957\u0962\u0963"  # Devanagari signs, virama
    "\u0981-\u0983\u09bc-\u09d7"  # Bengali signs
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # further combining blocks
    "\u200c\u200d"  # zero-width (non-)joiners used inside Persian and Indic words
)

# Scripts written without spaces between words: every character is a token.
_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK unified / compatibility ideographs
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0002fa1f"  # CJK extensions B-F, compatibility supplement
)

_HAS_CJK = re.compile(f"[{_CJK}]")
_WORD = re.compile(rf"[\w{_MARKS}]+")
_WORD_OR_CJK = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[\w{_MARKS}])+")

# Query side: ``*`` and ``?`` are wildcard characters inside a word.
QUERY_WILDCARDS = "*?"
_QUERY_WORD = re.compile(rf"[\w{_MARKS}*?]+")
_QUERY_WORD_OR_CJK = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[\w{_MARKS}*?])+")

# Accents dropped by folding: combining diacritics, Hebrew points (niqqud and
# cantillation, which most Hebrew news omits) and Arabic short vowels.  Indic vowel
# signs are *not* dropped: in Devanagari they are letters, not accents.
_STRIP = frozenset(
    chr(c)
    for c in (
        *range(0x0300, 0x0370),
        *range(0x0591, 0x05BE),
        0x05BF,
        0x05C1,
        0x05C2,
        0x05C4,
        0x05C5,
        0x05C7,
        *range(0x064B, 0x0660),
        0x0670,
        *range(0x1AB0, 0x1B00),
        *range(0x1DC0, 0x1E00),
        *range(0x20D0, 0x2100),
        *range(0xFE20, 0xFE30),
    )
)


# Latin letters whose mark is part of the character and so survives NFD: an
# editor types Walesa for Wałęsa, Sorensen for Sørensen and Kilicdaroglu for
# Kılıçdaroğlu exactly as Muller for Müller.  Each folds to one base letter, so
# no fold changes the number of words.
_LETTER_FOLDS = {"ł": "l", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t"}
_LETTER_RE = re.compile("[" + "".join(_LETTER_FOLDS) + "]")


def _fold_letter(match: re.Match[str]) -> str:
    return _LETTER_FOLDS[match.group()]


def has_cjk(text: str) -> bool:
    # The regex scans a character class without making a string per character, which
    # max(text) does: 3-5x faster on Latin or Cyrillic text, and it stops at the first
    # Chinese or Japanese character.
    return _HAS_CJK.search(text) is not None


def word_pattern(text: str) -> re.Pattern[str]:
    """The tokenizer pattern for ``text``; the CJK-aware one only where needed (it is slower)."""
    return _WORD_OR_CJK if has_cjk(text) else _WORD


def query_word_pattern(text: str) -> re.Pattern[str]:
    return _QUERY_WORD_OR_CJK if has_cjk(text) else _QUERY_WORD


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """Fold one word for case- and accent-insensitive comparison."""
    return fold_text(word)


# A regex deletes accents faster than str.translate, which looks up every character.
_STRIP_RE = re.compile("[" + "".join(sorted(_STRIP)) + "]+")


def fold_text(text: str) -> str:
    """``fold`` applied to a whole string at once (same steps, one C call each)."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return folded
    folded = _LETTER_RE.sub(_fold_letter, folded)
    decomposed = unicodedata.normalize("NFD", folded)
    return unicodedata.normalize("NFC", _STRIP_RE.sub("", decomposed))


# ASCII text needs no regex: one table lowercases letters, keeps digits and "_" (the
# ASCII part of ``\w``) and turns everything else into a space, then split() cuts.
_ASCII_WORDS = bytes(
    ord(chr(b).lower()) if b < 128 and (chr(b).isalnum() or chr(b) == "_") else 0x20
    for b in range(256)
)
_ASCII_BYTES = bytes(range(128))
# As _ASCII_WORDS for ASCII bytes; the bytes of other characters' UTF-8 kept.
_ASCII_WORDS_OTHERS_KEPT = bytes(b if b >= 128 else _ASCII_WORDS[b] for b in range(256))

# ASCII separators to spaces, every other byte (ASCII word characters, UTF-8
# sequences of other scripts) as it is.
_UTF8_SEPARATORS = bytes(
    b if b >= 128 or chr(b).isalnum() or chr(b) == "_" else 0x20 for b in range(256)
)
# A non-ASCII character that is neither a word character nor a combining mark.
_NON_ASCII_SEPARATOR = re.compile(rf"[^\w\x00-\x7f{_MARKS}]")

# Hangul jamo compose with their neighbours (ㄱ + ㅏ -> 가 under NFKC), so no jamo is
# folded apart from the text around it.
_JAMO = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\ud7b0-\ud7ff\uffa0-\uffdc]")
_MARK = re.compile(f"[{_MARKS}]")


def _stands_alone(ch: str) -> bool:
    """Neither a mark nor a jamo: nothing composes with, or reorders around, ``ch``."""
    return not (
        unicodedata.category(ch).startswith("M")
        or unicodedata.combining(ch)
        or _MARK.match(ch)
        or _JAMO.match(ch)
    )


def in_place_fold(ch: str) -> str | None:
    """What a non-ASCII character of non-CJK text becomes when it is replaced on its own in the
    text, before cutting: " " for a separator, its fold for a word character; None where
    that could differ from folding the word it stands in (marks, jamo, CJK).

    A word character qualifies when it and every character of its fold stand alone (no
    composition or reordering can cross its edges), its fold holds no space (which would
    cut the word) and is folded already (no later replacement touches it again).
    """
    if _WORD_OR_CJK.match(ch) is None:
        return " "
    if _HAS_CJK.match(ch) or not _stands_alone(ch):
        return None
    folded = fold(ch)
    if not folded or any(c.isspace() or not _stands_alone(c) or fold(c) != c for c in folded):
        return None
    return folded


class _InPlace(NamedTuple):
    """A non-ASCII character and its in-place fold, as text and as UTF-8."""

    character: str
    folded: str
    character_utf8: bytes
    folded_utf8: bytes


# Every non-ASCII character met so far: its in-place fold, or None where it has none.
_IN_PLACE: dict[str, _InPlace | None] = {}


def _in_place(ch: str) -> _InPlace | None:
    try:
        return _IN_PLACE[ch]
    except KeyError:
        pass
    folded = in_place_fold(ch)
    known = None
    if folded is not None:
        utf8 = ch.encode("utf-8", "surrogatepass"), folded.encode("utf-8", "surrogatepass")
        known = _InPlace(ch, folded, *utf8)
    if len(_IN_PLACE) < 100_000:
        _IN_PLACE[ch] = known
    return known


def _tokenize_in_place(encoded: bytes, characters: Iterable[str], *, few: bool) -> list[str] | None:
    """Cut text whose non-ASCII ``characters`` (every one that needs anything done) all
    fold in place: ASCII letters are lowered and ASCII separators spaced in one byte pass,
    then each such character is replaced by its fold, and split() cuts.  None if one of
    them does not fold in place.

    Separators go first, so a space never lands inside a fold (¼ -> 1⁄4 keeps its ⁄).
    Where non-ASCII characters are ``few`` they are replaced in the UTF-8, at memchr
    speed (their lead bytes are rare), and text whose characters all fold to ASCII
    decodes to an ASCII string, the cheapest to split; elsewhere (Cyrillic UTF-8 is
    half lead bytes) in the decoded text.
    """
    separators: list[_InPlace] = []
    letters: list[_InPlace] = []
    for ch in characters:
        known = _in_place(ch)
        if known is None:
            return None
        if known.folded == " ":
            separators.append(known)
        elif known.folded != ch:
            letters.append(known)
    spaced = encoded.translate(_ASCII_WORDS_OTHERS_KEPT)
    if few:
        for each in separators:
            spaced = spaced.replace(each.character_utf8, _SPACE)
        for each in letters:
            spaced = spaced.replace(each.character_utf8, each.folded_utf8)
        return spaced.decode("utf-8", "surrogatepass").split()
    text = spaced.decode("utf-8", "surrogatepass")
    for each in separators:
        text = text.replace(each.character, " ")
    for each in letters:
        text = text.replace(each.character, each.folded)
    return text.split()


_SPACE = b" "


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    """Sorted code points as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1] = (runs[-1][0], code)
        else:
            runs.append((code, code))
    return runs


# Blocks of alphabetic scripts whose letters mostly fold to themselves in place
# (lower-case Latin, Greek, Cyrillic, Armenian, Hebrew, Arabic, Indic letters).
_FIXED_BLOCKS = ((0x00A0, 0x06FF), (0x0900, 0x0DFF), (0x10A0, 0x10FF), (0x1E00, 0x1FFF))
FOLDED_TO_ITSELF = tuple(
    _ranges(
        [
            code
            for first, last in _FIXED_BLOCKS
            for code in range(first, last + 1)
            if in_place_fold(chr(code)) == chr(code)
        ]
    )
)
# A character of alphabetic text that needs something done before cutting: a
# separator, a letter with another fold, or one that does not fold in place.
_NEEDS_FOLDING = re.compile(
    "[^\\x00-\\x7f"
    + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in FOLDED_TO_ITSELF)
    + "]"
)


# Characters a text can be folded around without cutting it first: separators (a
# separator stays one) and word characters that fold to themselves and never combine
# with a neighbour.  Text of ASCII and such characters only needs its ASCII letters
# lowered, and then cuts into exactly the words that cutting first and folding word by
# word gives.  Chinese and Japanese news is mostly such text: ideographs, kana, CJK and
# full-width punctuation.  The unified ideographs have no decompositions and no case
# (the tests check every one); the other blocks are checked here, character by character.
IDEOGRAPHS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))
_CHECKED_BLOCKS = ((0x00A0, 0x00BF), (0x2000, 0x206F), (0x3000, 0x30FF), (0xFF00, 0xFFEF))


def folds_in_place(ch: str) -> bool:
    """Whether ``ch`` may stay as it is while the ASCII letters around it are lowered."""
    if not _stands_alone(ch):
        return False  # a mark or a jamo composes with the character before it
    if _WORD_OR_CJK.match(ch) is None:
        return True  # a separator: it only cuts, whatever it is
    return (
        unicodedata.normalize("NFKC", ch) == ch
        and ch.casefold() == ch
        and ch.lower() == ch
        and fold(ch) == ch
    )


FOLDED_IN_PLACE = (
    *_ranges([c for a, b in _CHECKED_BLOCKS for c in range(a, b + 1) if folds_in_place(chr(c))]),
    *IDEOGRAPHS,
)
_NOT_FOLDED_IN_PLACE = re.compile(
    "[^\\x00-\\x7f"
    + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in FOLDED_IN_PLACE)
    + "]"
)


def tokenize(text: str) -> list[str]:
    """The folded words of ``text``, in order: ``fold`` of each ``word_pattern`` match.

    One pass over the whole text instead of a call per word.  ASCII text is cut by
    a byte table and split().  Text in alphabetic scripts has the few distinct
    characters that need it (separators, capitals, accented letters) replaced by
    their folds (``_tokenize_in_place``) and is split: Latin-script news finds them
    by deleting its ASCII, other scripts by a regex for what does not fold to itself.
    Chinese and Japanese, a word per character, take the regex; text with combining
    marks (Devanagari, Arabic harakat, decomposed accents) is cut and then folded
    as one string.
    """
    if text.isascii():
        return text.encode().translate(_ASCII_WORDS).decode().split()
    encoded = text.encode("utf-8", "surrogatepass")
    words: list[str] | None = None
    if len(encoded) - len(text) < len(text) // 8:  # a few non-ASCII characters
        # Deleting the ASCII bytes leaves the non-ASCII characters, in one C pass.
        others = encoded.translate(None, _ASCII_BYTES).decode("utf-8", "surrogatepass")
        words = _tokenize_in_place(encoded, set(others), few=True)
    elif not has_cjk(text):
        words = _tokenize_in_place(encoded, set(_NEEDS_FOLDING.findall(text)), few=False)
    if words is not None:
        return words
    if has_cjk(text):
        if _NOT_FOLDED_IN_PLACE.search(text) is None:
            # One regex pass over the folded text, instead of cutting, joining, folding
            # and cutting again (a string per character, twice).
            return _WORD_OR_CJK.findall(text.lower())
        raw = _WORD_OR_CJK.findall(text)
    else:
        spaced = encoded.translate(_UTF8_SEPARATORS).decode("utf-8", "surrogatepass")
        for separator in set(_NON_ASCII_SEPARATOR.findall(spaced)):
            spaced = spaced.replace(separator, " ")
        # Every character left is a word character or a separator turned into a
        # space: split() cuts exactly where the word regex would.
        raw = spaced.split()
    if not raw:
        return []
    # NUL never occurs in a word nor comes out of normalization, and it is a stable
    # boundary for NFKC/NFD/NFC, so folding the joined words folds each one.
    return fold_text("\x00".join(raw)).split("\x00")


def exact(word: str) -> str:
    """The form compared by ``case:`` terms: as written, only Unicode-normalized."""
    return word if word.isascii() else unicodedata.normalize("NFKC", word)


def is_cjk_char(ch: str) -> bool:
    return len(ch) == 1 and _HAS_CJK.match(ch) is not None


class FieldText:
    """One field of a document, tokenized: folded words, their original forms and spans.

    The folded token list is built eagerly (every match needs it); exact forms,
    character spans and the position index are built on first use, because most
    items are rejected by the index without ever needing them.
    """

    __slots__ = (
        "_distinct",
        "_exact",
        "_joined",
        "_positions",
        "_sorted",
        "_spans",
        "text",
        "tokens",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        self._exact: list[str] | None = None
        self._spans: list[tuple[int, int]] | None = None
        self.tokens: list[str] = tokenize(text)
        self._distinct: frozenset[str] | None = None
        self._joined: str | None = None
        self._positions: dict[str, list[int]] | None = None
        self._sorted: list[str] | None = None

    @property
    def distinct(self) -> frozenset[str]:
        """The field's distinct words (the document keeps one set for title+summary+content)."""
        if self._distinct is None:
            self._distinct = frozenset(self.tokens)
        return self._distinct

    @property
    def joined(self) -> str:
        """The words with NUL before, between and after them: a phrase of literal words
        stands in the field exactly where its NUL-joined words stand in this string
        (no word holds a NUL)."""
        if self._joined is None:
            self._joined = "\x00" + "\x00".join(self.tokens) + "\x00"
        return self._joined

    @classmethod
    def from_values(cls, values: tuple[str, ...]) -> FieldText:
        """A multi-valued field (categories): values joined by newlines.

        A token that nothing can match separates the values, so a phrase never
        runs from one category into the next.
        """
        joined = "\n".join(values)
        field = cls.__new__(cls)
        field.text = joined
        tokens: list[str] = []
        exacts: list[str] = []
        spans: list[tuple[int, int]] = []
        offset = 0
        for i, value in enumerate(values):
            if i:
                tokens.append("\x00")
                exacts.append("\x00")
                spans.append((offset - 1, offset))
            part = cls(value)
            tokens.extend(part.tokens)
            exacts.extend(part.exact_tokens)
            spans.extend((s + offset, e + offset) for s, e in part.spans)
            offset += len(value) + 1
        field.tokens = tokens
        field._exact = exacts
        field._spans = spans
        field._distinct = None
        field._joined = None
        field._positions = None
        field._sorted = None
        return field

    @property
    def exact_tokens(self) -> list[str]:
        if self._exact is None:
            self._exact = list(map(exact, word_pattern(self.text).findall(self.text)))
        return self._exact

    @property
    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = [m.span() for m in word_pattern(self.text).finditer(self.text)]
        return self._spans

    def has_prefix(self, prefix: str) -> bool:
        if self._sorted is None:
            self._sorted = sorted(self.distinct)
        i = bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix)

    def with_prefix(self, prefix: str) -> list[str]:
        """Distinct tokens starting with ``prefix``, by binary search over the sorted words."""
        if self._sorted is None:
            self._sorted = sorted(self.distinct)
        words = self._sorted
        i = bisect_left(words, prefix)
        found = []
        while i < len(words) and words[i].startswith(prefix):
            found.append(words[i])
            i += 1
        return found

    def positions_of(self, token: str) -> list[int]:
        """Where ``token`` stands, found by C-level ``list.index`` scans and cached.

        Cheaper than indexing every position up front: a document is asked
        about a handful of its words, not all of them.
        """
        if self._positions is None:
            self._positions = {}
        found = self._positions.get(token)
        if found is None:
            found = []
            if token in self.distinct:
                tokens = self.tokens
                i = -1
                try:
                    while True:
                        i = tokens.index(token, i + 1)
                        found.append(i)
                except ValueError:
                    pass
            self._positions[token] = found
        return found
