"""How the engine does its work: lazy explanations, the rarest filing term, gated candidates,
terms read once per rule set.  (test_index_property.py holds that none of it changes a hit.)"""

from __future__ import annotations

import pytest

from rules import Document, Hit, MatchedTerm, RuleSetError, RuleSpec, Snippet, compile_rules
from rules.compile import Prepared
from rules.index import PREFIX, WORD, is_decided_by_index, rule_keys, word_share
from rules.parse import parse_query

ITEM = Document(
    title="Armenia and the CSTO",
    content="Pashinyan expressed his intentions to withdraw from the CSTO, officials said.",
)


def test_a_hit_explains_itself_once_on_first_access() -> None:
    calls: list[int] = []

    def explain(n: int) -> tuple[tuple[MatchedTerm, ...], Snippet]:
        calls.append(n)
        return (MatchedTerm("title", "CSTO", 16, 20),), Snippet("CSTO", ((0, 4),))

    hit = Hit.explained_later("r", explain, 7)
    assert calls == []
    assert hit.rule == "r"
    assert hit.snippet == Snippet("CSTO", ((0, 4),))
    assert hit.terms == (MatchedTerm("title", "CSTO", 16, 20),)
    assert calls == [7]


def test_a_lazy_hit_equals_the_same_hit_built_eagerly() -> None:
    (lazy,) = compile_rules([RuleSpec("r", "title:CSTO")]).match(ITEM)
    eager = Hit("r", (MatchedTerm("title", "CSTO", 16, 20),), lazy.snippet)
    assert lazy == eager and hash(lazy) == hash(eager)
    assert lazy != Hit("other", eager.terms, eager.snippet)
    assert lazy != Hit("r", (), eager.snippet)


@pytest.mark.parametrize("name", ["rule", "terms", "snippet"])
def test_a_hit_is_read_only(name: str) -> None:
    hit = Hit("r", (), Snippet("", ()))
    with pytest.raises(AttributeError):
        setattr(hit, name, "changed")


@pytest.mark.parametrize(
    ("name", "query", "filed_under"),
    [
        ("common word loses to a name", "the AND pashinyan", {(WORD, "pashinyan")}),
        ("listed common word loses to unlisted", "president AND kocharyan", {(WORD, "kocharyan")}),
        (
            "one rare word beats an OR of two",
            "(trump OR china) AND kocharyan",
            {(WORD, "kocharyan")},
        ),
        ("phrase filed under its rarest word", '"the president of armenia"', {(WORD, "armenia")}),
        (
            "wildcard when nothing else is required",
            "withdraw* OR leave*",
            {
                (PREFIX, "with"),
                (PREFIX, "leav"),
            },
        ),
    ],
)
def test_rules_are_filed_under_their_rarest_required_part(
    name: str, query: str, filed_under: set[tuple[str, str]]
) -> None:
    keys, _ = rule_keys(parse_query(query))
    assert keys == frozenset(filed_under), name


def test_listed_words_are_commoner_than_unlisted_ones() -> None:
    assert word_share("the") > word_share("president") > word_share("kocharyan")


def test_a_gate_word_absent_from_the_item_keeps_the_rule_from_being_evaluated() -> None:
    ruleset = compile_rules(
        [RuleSpec("gated", "pashinyan AND (nato OR brussels)"), RuleSpec("plain", "pashinyan")]
    )
    doc = Prepared(ITEM)
    assert ruleset._index.candidates(doc) == [1]
    assert [h.rule for h in ruleset.match(ITEM)] == ["plain"]
    with_gate = Prepared(Document(content="Pashinyan flew to Brussels"))
    assert ruleset._index.candidates(with_gate) == [0, 1]


def test_a_term_shared_by_rules_is_still_refused_in_each_with_its_own_column() -> None:
    with pytest.raises(RuleSetError) as raised:
        compile_rules([RuleSpec("a", "CSTO AND wi*"), RuleSpec("b", "wi*")])
    columns = {error.rule: error.column for error in raised.value.errors}
    assert columns == {"a": 12, "b": 3}  # the column of each query's own "*"


def test_brute_force_evaluates_every_rule_without_another_rules_results() -> None:
    # Two rules share the phrase matcher; each must find the phrase on its own.
    ruleset = compile_rules(
        [RuleSpec("a", '"withdraw from" NEAR/3 csto'), RuleSpec("b", '"withdraw from" AND csto')]
    )
    assert [h.rule for h in ruleset.match_brute_force(ITEM)] == ["a", "b"]
    assert ruleset.match_brute_force(ITEM) == ruleset.match(ITEM)


@pytest.mark.parametrize(
    ("name", "query", "decided"),
    [
        ("one word", "pashinyan", True),
        ("an OR of words", "pashinyan OR kocharyan", True),
        ("two word groups", "(pashinyan OR kocharyan) AND csto", True),
        ("a group repeated", "csto AND csto AND armenia", True),
        ("three groups need evaluation", "pashinyan AND csto AND armenia", False),
        ("a phrase needs evaluation", '"prime minister" AND armenia', False),
        ("a field needs evaluation", "title:pashinyan AND csto", False),
        ("a wildcard needs evaluation", "withdraw* AND csto", False),
        ("NOT needs evaluation", "csto AND NOT sport", False),
        ("exact case needs evaluation", "case:US AND csto", False),
    ],
)
def test_the_index_alone_decides_rules_of_at_most_two_word_groups(
    name: str, query: str, decided: bool
) -> None:
    assert is_decided_by_index(parse_query(query)) is decided, name


def test_a_decided_rule_is_still_evaluated_when_its_words_stand_in_the_author_field() -> None:
    ruleset = compile_rules([RuleSpec("decided", "pashinyan AND csto")])
    by_author = Document(title="CSTO summit", author="Anna Pashinyan")
    assert ruleset.match(by_author) == [] == ruleset.match_brute_force(by_author)
    assert [h.rule for h in ruleset.match(ITEM)] == ["decided"]


def test_wildcard_parts_are_filed_under_words_when_the_rule_has_any() -> None:
    keys, _ = rule_keys(parse_query("withdr* AND kocharyanovich"))
    assert keys == frozenset({(WORD, "kocharyanovich")})
    keys, _ = rule_keys(parse_query("zzq* AND the"))
    assert keys == frozenset({(WORD, "the")})


def test_many_wildcard_only_rules_are_found_through_the_items_word_heads() -> None:
    # Past a few dozen prefix keys the index stops searching for each one and looks up
    # the first 3 and 4 letters of each of the item's words instead; every such rule is
    # found there, none beyond.
    stems = [f"{a}{b}{c}" for a in "bcdfg" for b in "aeiou" for c in "lmnr"][:80]
    ruleset = compile_rules([RuleSpec(stem, f"{stem}x*") for stem in stems])
    assert len(ruleset._index.prefix_needles) == 80
    item = Document(title="Bal ALX balxa", summary="belxing Cemxes", content="gurx and dolxo")
    expected = ["bal", "bel", "cem", "dol"]  # no rule for gurx*; Bal and ALX have no x after
    assert [hit.rule for hit in ruleset.match(item)] == expected
    assert [hit.rule for hit in ruleset.match_brute_force(item)] == expected

