"""The index never changes an answer, and explaining a hit never fails, over the text
the parser fuzzing uses: combining marks, CJK, RTL, emoji, full-width forms, NUL.

test_index_property.py checks the same over a small Latin/Cyrillic vocabulary.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import Document, Hit, RuleSetError, RuleSpec, compile_rules
from tests.rules.test_index_property import combined

WORDS = [
    "csto", "CSTO", "ＣＳＴＯ", "ОДКБ", "одкб", "Pashinia\u0301n", "Pashinián", "pashinian",
    "Müller", "muller", "北京", "北", "京", "東京", "テスト", "ﾃｽﾄ", "مرحبا", "שָׁלוֹם", "שלום",
    "हिन्दी", "ＡＮＤ", "and", "Straße", "strasse", "STRASSE", "İstanbul", "istanbul", "ǅemal",
    "ﬁnal", "final", "Wałęsa", "walesa", "x\u200by", "e\u0301", "é", "😀", "a😀b", "NUL\x00x",
    "ß", "ẞ", "US", "us", "Ⅸ", "ix", "١٢٣", "123", "\u0301abc", "abc\u0301",
]
SEPARATORS = [" ", ", ", ". ", "\n", "\t", "\u00a0", "\u3000", "—", "“", "”", "\u200f",
              "\u202e", "😀", "\x00", "\ud800"]
PREFIXES = ["csto*", "pash*", "одк*", "mull?r", "str*", "fin*", "walę*", "ist*", "مرح*",
            "हिन*", "abc*", "Pashinia\u0301*"]
FIELDS = ["title:", "summary:", "content:", "author:", "category:"]

word = st.sampled_from(WORDS)
phrase = st.tuples(
    st.sampled_from(['""', "“”", "„“"]), st.lists(word, min_size=1, max_size=3)
).map(lambda t: t[0][0] + " ".join(t[1]) + t[0][1])
wildcard = st.sampled_from(PREFIXES)
leaf = st.one_of(
    word,
    phrase,
    wildcard,
    st.sampled_from(["url:reuters", "url:ＲＥＵＴＥＲＳ", "url:İst", "feed:bbc", "feed:Straße",
                     "@csto", "@mixed"]),
    st.tuples(
        st.sampled_from([*FIELDS, "case:", "case:title:", "title:case:"]),
        st.one_of(word, phrase, wildcard),
    ).map("".join),
)
near = st.tuples(
    st.one_of(word, phrase, wildcard),
    st.sampled_from(["NEAR", "ONEAR"]),
    st.integers(1, 4),
    st.one_of(word, phrase),
).map(lambda t: f"{t[0]} {t[1]}/{t[2]} {t[3]}")


query = st.recursive(
    st.one_of(leaf, near), lambda inner: combined(inner, [*FIELDS, "case:"]), max_leaves=6
)

text = st.lists(
    st.tuples(st.one_of(word, st.text(max_size=3)), st.sampled_from(SEPARATORS)).map("".join),
    max_size=20,
).map("".join)
# Long enough that a snippet must be cut, and that a match may stand past its start.
body = st.one_of(text, st.tuples(text, st.integers(0, 40)).map(lambda t: (t[0] + " ") * t[1]))
document = st.builds(
    Document,
    title=text,
    summary=body,
    content=body,
    author=text,
    categories=st.lists(text, max_size=2).map(tuple),
    feeds=st.lists(st.sampled_from(["BBC", "Straße", "STRASSE", "bbc-world"]), max_size=2).map(
        tuple
    ),
    url=st.sampled_from(
        ["", "https://www.reuters.com/x", "https://İstanbul.example/ＲＥＵＴＥＲＳ"]
    ),
)

LISTS = {
    "csto": ["CSTO", "ОДКБ", "Collective Security Treaty Organization"],
    "mixed": ["北京", "Pashinia\u0301n", "Straße", "a😀b", "fin*"],
}


def field_text(doc: Document, field: str) -> str:
    if field in ("title", "summary", "content", "author", "url"):
        return str(getattr(doc, field))
    return "\n".join(doc.categories if field == "category" else doc.feeds)


def check_explained(hit: Hit, doc: Document) -> None:
    for term in hit.terms:
        assert field_text(doc, term.field)[term.start : term.end] == term.text
    snippet = hit.snippet
    assert len(snippet.text) <= 300
    previous = 0
    for start, end in snippet.marks:
        assert previous <= start < end <= len(snippet.text), snippet
        previous = end
    rendered = snippet.render("[", "]")
    assert len(rendered) == len(snippet.text) + 2 * len(snippet.marks)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queries=st.lists(query, min_size=1, max_size=8),
    docs=st.lists(document, min_size=1, max_size=3),
)
def test_indexed_matching_equals_brute_force_over_unicode(
    queries: list[str], docs: list[Document]
) -> None:
    specs = [RuleSpec(f"r{i}", q) for i, q in enumerate(queries)]
    try:
        ruleset = compile_rules(specs, lists=LISTS)
    except RuleSetError:
        # A leaf that is all emoji or NUL is refused: keep the rules that compile.
        good = []
        for spec in specs:
            try:
                compile_rules([spec], lists=LISTS)
            except RuleSetError:
                continue
            good.append(spec)
        if not good:
            return
        ruleset = compile_rules(good, lists=LISTS)
    for doc in docs:
        everything = ruleset.match_brute_force(doc)
        assert ruleset.match(doc) == everything
        for hit in everything:
            check_explained(hit, doc)
