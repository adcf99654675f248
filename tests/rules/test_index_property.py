"""The term index never changes an answer: indexed matching equals evaluating every rule."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import Document, RuleSpec, compile_rules

# A small vocabulary so random queries and random documents actually meet.
WORDS = [
    "csto",
    "CSTO",
    "Pashinián",
    "pashinian",
    "withdraw",
    "withdrawal",
    "armenia",
    "Müller",
    "muller",
    "ОДКБ",
    "одкб",
    "the",
    "US",
    "us",
    "北京",
    "sport",
    "x1",
]
PREFIXES = ["withdr*", "arm*", "pash*", "одк*", "organi?ation", "spo*t"]
FIELDS = ["title:", "summary:", "content:", "author:", "category:"]

word = st.sampled_from(WORDS)
phrase = st.lists(word, min_size=1, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"')
leaf = st.one_of(
    word,
    phrase,
    st.sampled_from(PREFIXES),
    st.sampled_from(["url:reuters", "url:example.org/a", "feed:bbc", "feed:armenia", "@csto"]),
    st.tuples(st.sampled_from([*FIELDS, "case:"]), st.one_of(word, phrase)).map("".join),
)
near = st.tuples(
    st.one_of(word, phrase, st.sampled_from(PREFIXES)),
    st.sampled_from(["NEAR", "ONEAR"]),
    st.integers(1, 6),
    st.one_of(word, phrase),
).map(lambda t: f"{t[0]} {t[1]}/{t[2]} {t[3]}")


def combined(
    inner: st.SearchStrategy[str], scopes: list[str] = FIELDS
) -> st.SearchStrategy[str]:
    """Queries built from ``inner`` ones: joined by an operator, grouped, negated or scoped."""
    return st.one_of(
        st.tuples(inner, st.sampled_from([" AND ", " OR ", " ", " AND NOT ", " -"]), inner).map(
            "".join
        ),
        inner.map(lambda q: f"({q})"),
        inner.map(lambda q: f"NOT ({q})"),
        st.tuples(st.sampled_from(scopes), inner).map(lambda t: f"{t[0]}({t[1]})"),
    )


query = st.recursive(st.one_of(leaf, near), combined, max_leaves=6)

text = st.lists(
    st.one_of(word, st.sampled_from([",", ".", "organisation", "sport"])), max_size=25
).map(" ".join)
document = st.builds(
    Document,
    title=text,
    summary=text,
    content=text,
    author=text,
    categories=st.lists(text, max_size=2).map(tuple),
    feeds=st.lists(st.sampled_from(["BBC", "Armenia", "Reuters"]), max_size=2).map(tuple),
    url=st.sampled_from(["", "https://www.reuters.com/x", "https://example.org/a/b"]),
)

LISTS = {"csto": ["CSTO", "ОДКБ", "Collective Security Treaty Organization"]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queries=st.lists(query, min_size=1, max_size=12),
    docs=st.lists(document, min_size=1, max_size=4),
    only=st.none() | st.sets(st.integers(0, 11), max_size=10),
)
def test_indexed_matching_equals_brute_force(
    queries: list[str], docs: list[Document], only: set[int] | None
) -> None:
    ruleset = compile_rules([RuleSpec(f"r{i}", q) for i, q in enumerate(queries)], lists=LISTS)
    for doc in docs:
        everything = ruleset.match_brute_force(doc)
        assert ruleset.match(doc) == everything
        if only is not None:
            names = {f"r{i}" for i in only}
            assert ruleset.match(doc, only=names) == [h for h in everything if h.rule in names]


# Many rules made only of wildcards: past a few dozen prefix keys the index stops
# searching for each key and looks up the first letters of the item's words instead.
stem = st.text(alphabet="abcé", min_size=3, max_size=5)
wildcard = st.tuples(stem, st.sampled_from(["*", "?", "?*", "*a"])).map("".join)
wildcard_query = st.one_of(
    wildcard,
    st.tuples(wildcard, st.sampled_from([" OR ", " AND ", " NEAR/2 "]), wildcard).map("".join),
    st.tuples(st.sampled_from(["title:", "author:"]), wildcard).map("".join),
)
stem_text = st.lists(st.text(alphabet="abcéB ", min_size=1, max_size=7), max_size=12).map(
    " ".join
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    queries=st.lists(wildcard_query, min_size=60, max_size=90),
    docs=st.lists(st.builds(Document, title=stem_text, content=stem_text, author=stem_text)),
)
def test_indexed_matching_equals_brute_force_over_many_wildcard_rules(
    queries: list[str], docs: list[Document]
) -> None:
    ruleset = compile_rules([RuleSpec(f"r{i}", q) for i, q in enumerate(queries)])
    for doc in docs:
        assert ruleset.match(doc) == ruleset.match_brute_force(doc)
