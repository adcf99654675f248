from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.htmltext import collapse_whitespace, html_to_text
from monitor.parse import parse_feed
from rules import Document, RuleSpec, compile_rules

CASES = [
    ("plain text passes through", "Pashinyan to withdraw", "Pashinyan to withdraw"),
    ("whitespace collapsed", "  a \t b\n\n\n c  ", "a b\nc"),
    ("inline tags removed", "<b>Breaking</b>: <i>quake</i>", "Breaking: quake"),
    ("paragraphs become lines", "<p>One</p><p>Two</p>", "One\nTwo"),
    ("br becomes a line break", "a<br>b<br/>c", "a\nb\nc"),
    ("list items become lines", "<ul><li>x</li><li>y</li></ul>", "x\ny"),
    ("table cells separated", "<tr><td>a</td><td>b</td></tr>", "a b"),
    ("script dropped", "a<script>alert('x')</script>b", "ab"),
    ("style dropped", "<style>p{color:red}</style>text", "text"),
    ("noscript and template dropped", "<noscript>n</noscript><template>t</template>ok", "ok"),
    ("unclosed script swallows the rest", "ok<script>var x = 1;", "ok"),
    ("comments dropped", "a<!-- hidden -->b", "ab"),
    ("named entities decoded", "Caf&eacute; &amp; bar", "Café & bar"),
    ("numeric entities decoded", "it&#8217;s &#x2014; done", "it’s — done"),
    ("nbsp is a space", "a&nbsp;&nbsp;b", "a b"),
    ("escaped tag stays literal text", "&lt;b&gt;bold&lt;/b&gt;", "<b>bold</b>"),
    ("attribute with > in quotes", '<a title="x>y" href="/p">link</a>', "link"),
    ("lone less-than kept", "x < y and y > z", "x < y and y > z"),
    ("bare ampersand kept", "AT&T and R&D", "AT&T and R&D"),
    ("control characters removed", "a\x00b\x07c", "abc"),
    ("soft hyphens removed", "Palest&shy;inian Bundes\u00adtag", "Palestinian Bundestag"),
    ("word joiners removed", "bud\u2060get\ufeff", "budget"),
    ("cdata markers removed", "<![CDATA[inside]]>", "inside"),
    ("uppercase tags", "<P>One<BR>Two</P>", "One\nTwo"),
    ("empty string", "", ""),
]


@pytest.mark.parametrize(("html", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


def test_collapse_whitespace_joins_lines() -> None:
    assert collapse_whitespace(" a\nb \t c ") == "a b c"


@given(st.text(alphabet=st.sampled_from(list("<>/&;#x!-\"'= abpscript\n")) | st.characters()))
def test_html_to_text_is_total(garbage: str) -> None:
    result = html_to_text(garbage)
    assert isinstance(result, str)
    assert result == result.strip()


# A hang guard, not a speed check: linear work on these 1-1.5 MB inputs takes well
# under a second, quadratic work (a regex backtracking over an unclosed construct)
# minutes, so the timeout tells the two apart on any machine.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "garbage",
    ["<a" * 500_000, "<script" * 200_000, '<a "' * 300_000, "<!x" * 300_000, "&#" * 500_000],
    ids=["unclosed tags", "unclosed script tags", "unclosed quotes", "declarations", "refs"],
)
def test_pathological_input_stays_linear(garbage: str) -> None:
    assert isinstance(html_to_text(garbage), str)


def test_100_kb_of_article_markup_becomes_text() -> None:
    paragraph = (
        '<p class="body">The <a href="https://example.org/x?a=1&amp;b=2">minister</a> said '
        "&ldquo;we will withdraw&rdquo; <em>today</em>.<br/>More&nbsp;text.</p>\n"
    )
    html = paragraph * (100_000 // len(paragraph))
    text = html_to_text(html)
    assert "“we will withdraw” today." in text
    assert "<" not in text


def test_a_soft_hyphenated_word_in_a_feed_matches_its_rule() -> None:
    # Dawn's world feed has "Palest\u00adinian" (a soft hyphen) in item content.
    body = ('<?xml version="1.0"?><rss version="2.0"><channel><item><guid>1</guid>'
            "<title>West Bank</title><description>The Palest\u00adinian Authority"
            "</description></item></channel></rss>").encode()
    (item,) = parse_feed(body, url="https://news.example.org/feed").items
    ruleset = compile_rules([RuleSpec("pa", '"Palestinian Authority"')])
    (hit,) = ruleset.match(Document(title=item.title, summary=item.summary))
    assert hit.snippet.text == "The Palestinian Authority"


def test_c1_controls_from_a_json_feed_become_windows_1252_characters() -> None:
    # A JSON feed whose publisher read Windows-1252 as Latin-1: "\u0093" for a quote.
    # U+009B is an escape sequence's start to some terminals `wirewatch hits` prints to.
    body = json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "Wire",
        "items": [{"id": "1", "title": "He said \u0093no\u0094 \u009b31m",
                   "content_text": "It\u0092s over\u0081."}],
    }).encode()
    (item,) = parse_feed(body, url="https://news.example.org/feed.json",
                         content_type="application/feed+json").items
    assert item.title == "He said \u201cno\u201d \u203a31m"
    assert item.content == "It\u2019s over."
    assert not any("\x80" <= ch <= "\x9f" for ch in item.title + item.content)
