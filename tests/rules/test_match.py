"""What matches what: the language, case and accents, scripts, fields."""

from __future__ import annotations

import pytest

from rules import Document, RuleSpec, compile_rules

CSTO_ITEM = Document(
    title="Armenia and the CSTO",
    content="Pashinyan expressed his intentions to withdraw from the CSTO, officials said.",
)


def matches(query: str, doc: Document, **lists: list[str]) -> bool:
    ruleset = compile_rules([RuleSpec("r", query)], lists=lists)
    indexed = bool(ruleset.match(doc))
    assert indexed == bool(ruleset.match_brute_force(doc))
    return indexed


def text(body: str, **fields: str) -> Document:
    return Document(content=body, **fields)  # type: ignore[arg-type]


# (name, query, document, expected)
CASES = [
    ("skeleton example", "CSTO AND withdraw*", CSTO_ITEM, True),
    ("case-insensitive word", "csto", CSTO_ITEM, True),
    ("word absent", "NATO", CSTO_ITEM, False),
    ("implicit AND", "Pashinyan CSTO", CSTO_ITEM, True),
    ("implicit AND fails", "Pashinyan NATO", CSTO_ITEM, False),
    ("OR", "NATO OR CSTO", CSTO_ITEM, True),
    ("NOT excludes", "CSTO NOT withdraw", CSTO_ITEM, False),
    ("minus excludes", "CSTO -withdraw", CSTO_ITEM, False),
    ("NOT of absent", "CSTO AND NOT NATO", CSTO_ITEM, True),
    ("precedence AND over OR", "NATO AND x OR CSTO", CSTO_ITEM, True),
    ("parentheses", "NATO AND (x OR CSTO)", CSTO_ITEM, False),
    ("phrase", '"withdraw from the CSTO"', CSTO_ITEM, True),
    ("phrase order matters", '"CSTO the from"', CSTO_ITEM, False),
    ("phrase crosses punctuation", '"CSTO officials"', CSTO_ITEM, True),
    ("words do not match inside words", "draw", CSTO_ITEM, False),
    ("prefix wildcard", "intent*", CSTO_ITEM, True),
    ("prefix wildcard needs prefix", "intentionsx*", CSTO_ITEM, False),
    ("single-char wildcard", "organi?ation", text("the organisation met"), True),
    ("single-char wildcard z", "organi?ation", text("The Organization met"), True),
    ("single-char wildcard is one char", "organi?ation", text("organiation"), False),
    ("inner star", "with*aw", text("withdraw"), True),
    ("wildcard in phrase", '"withdr* from"', CSTO_ITEM, True),
    ("question mark in phrase is punctuation", '"officials said?"', CSTO_ITEM, True),
    ("NEAR within", "Pashinyan NEAR/5 withdraw", CSTO_ITEM, True),
    ("NEAR too far", "Pashinyan NEAR/3 withdraw", CSTO_ITEM, False),
    ("NEAR either order", "withdraw NEAR/5 Pashinyan", CSTO_ITEM, True),
    ("ONEAR in order", "Pashinyan ONEAR/5 withdraw", CSTO_ITEM, True),
    ("ONEAR wrong order", "withdraw ONEAR/5 Pashinyan", CSTO_ITEM, False),
    ("NEAR/1 adjacent", "officials NEAR/1 said", CSTO_ITEM, True),
    ("NEAR with phrase", '"to withdraw" NEAR/3 CSTO', CSTO_ITEM, True),
    ("NEAR with OR group", "(NATO OR CSTO) NEAR/2 officials", CSTO_ITEM, True),
    ("NEAR never across fields", "Armenia NEAR/50 Pashinyan", CSTO_ITEM, False),
    ("accents folded", "Pashinián", text("Pashinian spoke"), True),
    ("accents folded in document", "Muller", text("Thomas Müller scored"), True),
    ("eszett", "strasse", text("Die Straße"), True),
    ("decomposed accent", "Pashinián", text("Pashinia\u0301n spoke"), True),
    ("hebrew points folded", "עברית", text("מילון עִבְרִית חדש"), True),
    ("hebrew points folded in query", "עִבְרִית", text("חדשות בעברית ובעברית עברית"), True),
    ("stroke folded in document", "Walesa", text("Lech WAŁĘSA spoke"), True),
    ("stroke folded in query", "Łódź", text("the Lodz council"), True),
    ("slashed o folded", "Sorensen", text("Mette Sørensen"), True),
    ("dotless i folded", "Kilicdaroglu", text("Kemal Kılıçdaroğlu said"), True),
    ("barred d folded", "Dokovic", text("Novak Đoković won"), True),
    ("case: keeps the stroke", "case:Łódź", text("the Lodz council"), False),
    ("case: exact", "case:US", text("US troops"), True),
    ("case: rejects other case", "case:US", text("tell us more"), False),
    ("case: phrase", 'case:"New York"', text("in New York today"), True),
    ("case: phrase other case", 'case:"New York"', text("in new york today"), False),
    ("case: group", "case:(US OR UK)", text("the UK said"), True),
    ("cyrillic", "ОДКБ", text("Пашинян заявил о выходе из ОДКБ"), True),
    ("cyrillic case-insensitive", "одкб", text("выходе из ОДКБ."), True),
    ("armenian", "ՀԱՊԿ", text("Փաշինյանը ՀԱՊԿ-ից դուրս գալու մասին"), True),
    ("greek tonos", "αθηνα", text("Η Αθήνα σήμερα"), True),
    ("arabic", "الناتو", text("قال الأمين العام لحلف الناتو"), True),
    ("arabic diacritics folded", "حلف", text("أمين حَلْف الناتو"), True),
    ("devanagari", "भारत", text("भारत सरकार ने कहा"), True),
    ("devanagari is not split by vowel signs", "सरकार", text("भारत सरकार ने"), True),
    ("chinese run", "北京", text("中国北京今天宣布"), True),
    ("chinese characters apart", "北京", text("北方的京城"), False),
    ("japanese", "東京", text("東京都で地震"), True),
    ("title field", "title:CSTO", CSTO_ITEM, True),
    ("title field absent", "title:Pashinyan", CSTO_ITEM, False),
    ("content field", "content:Pashinyan", CSTO_ITEM, True),
    ("field group", "title:(NATO OR CSTO)", CSTO_ITEM, True),
    ("field group all absent", "title:(NATO OR withdraw)", CSTO_ITEM, False),
    ("author", "author:smith", Document(author="Jane Smith"), True),
    ("author not in text", "smith", Document(author="Jane Smith"), False),
    ("category", 'category:"middle east"', Document(categories=("World", "Middle East")), True),
    (
        "category phrase never spans values",
        'category:"world middle"',
        Document(categories=("World", "Middle East")),
        False,
    ),
    ("feed name", "feed:bbc-world", Document(feeds=("BBC World", "uk")), True),
    ("feed tag", "feed:UK", Document(feeds=("BBC World", "uk")), True),
    ("feed is whole value", "feed:bbc", Document(feeds=("BBC World",)), False),
    ("url substring", "url:reuters.com", Document(url="https://www.Reuters.com/world/x"), True),
    ("url absent", "url:apnews.com", Document(url="https://www.reuters.com/x"), False),
    ("url group", "url:(apnews.com OR reuters.com)", Document(url="https://reuters.com/"), True),
    ("list", "@csto AND withdraw*", CSTO_ITEM, True),
    ("list phrase entry", "@csto", text("the Collective Security Treaty Organization"), True),
    ("list in field", "title:@csto", text("ОДКБ"), False),
    ("no positive term", "NOT sport", CSTO_ITEM, True),
    ("hyphenated query word is a phrase", "al-Assad", text("Bashar al-Assad fled"), True),
    ("apostrophe", "Pashinyan's", text("Pashinyan’s government"), True),
]


@pytest.mark.parametrize(
    ("query", "doc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_query_matches(query: str, doc: Document, expected: bool) -> None:
    lists = {"csto": ["CSTO", "ОДКБ", "ՀԱՊԿ", "Collective Security Treaty Organization"]}
    assert matches(query, doc, **lists) is expected


def test_hits_keep_rule_order_and_only_restricts() -> None:
    ruleset = compile_rules(
        [RuleSpec("b", "CSTO"), RuleSpec("a", "withdraw*"), RuleSpec("c", "NATO")]
    )
    assert [h.rule for h in ruleset.match(CSTO_ITEM)] == ["b", "a"]
    assert [h.rule for h in ruleset.match(CSTO_ITEM, only={"a", "c"})] == ["a"]
    assert ruleset.match(CSTO_ITEM, only=()) == []
    assert ruleset.names() == ("b", "a", "c") and len(ruleset) == 3


@pytest.mark.parametrize(
    ("query", "doc", "expected"),
    [
        ("title:case:AI", Document(title="AI rules", content="AI"), True),
        ("title:case:AI", Document(title="ai rules", content="AI"), False),
        ("title:(NATO OR content:withdraw)", CSTO_ITEM, True),
        ("-(NATO OR sport) CSTO", CSTO_ITEM, True),
        ('CSTO -"to withdraw"', CSTO_ITEM, False),
    ],
)
def test_documented_examples(query: str, doc: Document, expected: bool) -> None:
    assert matches(query, doc) is expected
