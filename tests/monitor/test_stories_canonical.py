"""canonical_url: one spelling for every way a feed links the same article."""

from __future__ import annotations

import pytest

from monitor.canonical import canonical_url

CASES = [
    ("scheme and host lower-cased", "HTTPS://Example.COM/World/Story", "https://example.com/World/Story"),
    ("path case kept", "https://example.com/World", "https://example.com/World"),
    ("http and https are one", "http://example.com/a", "https://example.com/a"),
    ("default http port dropped", "http://example.com:80/a", "https://example.com/a"),
    ("default https port dropped", "https://example.com:443/a", "https://example.com/a"),
    ("other port kept", "https://example.com:8443/a", "https://example.com:8443/a"),
    ("fragment dropped", "https://example.com/a#comments", "https://example.com/a"),
    ("utm_* dropped", "https://example.com/a?utm_source=rss&utm_medium=feed&utm_campaign=x",
     "https://example.com/a"),
    ("fbclid dropped", "https://example.com/a?fbclid=IwAR0abc", "https://example.com/a"),
    ("gclid dropped", "https://example.com/a?gclid=Cj0KCQ", "https://example.com/a"),
    ("mailchimp ids dropped", "https://example.com/a?mc_cid=1&mc_eid=2", "https://example.com/a"),
    ("ocid dropped", "https://example.com/a?ocid=msedgntp", "https://example.com/a"),
    ("cmpid dropped", "https://example.com/a?cmpid=rss", "https://example.com/a"),
    ("BBC at_* dropped", "https://www.bbc.com/news/articles/cp81?at_medium=RSS&at_campaign=rss",
     "https://bbc.com/news/articles/cp81"),
    ("real parameters kept and sorted", "https://example.com/a?b=2&utm_source=x&a=1",
     "https://example.com/a?a=1&b=2"),
    ("parameter names other than tracking kept", "https://example.com/watch?v=abc",
     "https://example.com/watch?v=abc"),
    ("trailing slash dropped", "https://example.com/world/story/", "https://example.com/world/story"),
    ("root slash dropped", "https://example.com/", "https://example.com"),
    ("/amp/ segment dropped", "https://example.com/world/amp/story", "https://example.com/world/story"),
    ("trailing /amp dropped", "https://example.com/world/story/amp/", "https://example.com/world/story"),
    ("?outputType=amp dropped", "https://example.com/a?outputType=amp", "https://example.com/a"),
    ("amp=1 dropped", "https://example.com/a?amp=1", "https://example.com/a"),
    ("amp. host prefix dropped", "https://amp.example.com/a", "https://example.com/a"),
    (".amp suffix dropped", "https://www.bbc.co.uk/news/world-123.amp", "https://bbc.co.uk/news/world-123"),
    ("www. dropped", "https://www.example.com/a", "https://example.com/a"),
    ("mobile m. dropped", "https://m.bbc.com/news/articles/cp81", "https://bbc.com/news/articles/cp81"),
    ("mobile. dropped", "https://mobile.example.com/a", "https://example.com/a"),
    ("NYT .amp.html folded", "https://www.nytimes.com/2026/02/18/world/x.amp.html",
     "https://nytimes.com/2026/02/18/world/x.html"),
    ("DW maca dropped", "https://www.dw.com/en/x/a-75182003?maca=en-rss-en-all-1573-rdf",
     "https://dw.com/en/x/a-75182003"),
    ("raw non-ASCII path encoded", "https://example.com/café", "https://example.com/caf%C3%A9"),
    ("a bare two-label host keeps amp.", "https://amp.dev/a", "https://amp.dev/a"),
    ("percent-escape hex upper-cased", "https://example.com/caf%c3%a9", "https://example.com/caf%C3%A9"),
    ("escaped unreserved decoded", "https://example.com/%7Euser", "https://example.com/~user"),
    ("everything at once",
     "HTTP://AMP.Example.com:80/News/Story/amp/?utm_source=tw&id=7&fbclid=x#top",
     "https://example.com/News/Story?id=7"),
    ("Google Alerts link is its article",
     "https://www.google.com/url?rct=j&sa=t&url=https://www.reuters.com/world/csto-exit/"
     "%3Futm_source%3Drss&ct=ga&cd=CAIyGjg&usg=AOvVaw0", "https://reuters.com/world/csto-exit"),
    ("Google search result link on a country domain", "https://www.google.co.uk/url?q="
     "https://www.bbc.co.uk/news/world-1&sa=U", "https://bbc.co.uk/news/world-1"),
    ("a Google redirect to a non-web link is not followed",
     "https://www.google.com/url?url=javascript:alert(1)",
     "https://google.com/url?url=javascript%3Aalert%281%29"),
    ("other Google pages kept", "https://www.google.com/search?q=https://x.example",
     "https://google.com/search?q=https%3A%2F%2Fx.example"),
    ("not http: kept as given", " urn:uuid:0f3a ", "urn:uuid:0f3a"),
    ("relative: kept as given", "/world/story", "/world/story"),
]


@pytest.mark.parametrize(("url", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a?utm_source=x", "http://www.example.com/a/"),
        ("https://amp.example.com/a/amp", "https://example.com/a#x"),
        ("https://example.com/a?outputType=amp", "https://example.com/a"),
        ("http://m.bbc.com/news/articles/cwyknjnd706o/",
         "https://www.bbc.com/news/articles/cwyknjnd706o?at_medium=RSS&at_campaign=rss"),
        ("https://www.dw.com/en/x/a-75182003?maca=en-rss-en-all-1573-rdf",
         "https://www.dw.com/en/x/a-75182003?maca=en-rss-en-world-4025-rdf"),
        ("https://example.com/caf%c3%a9", "https://example.com/café"),
        ("https://www.nytimes.com/2026/02/18/world/x.amp.html",
         "https://www.nytimes.com/2026/02/18/world/x.html?partner=rss&emc=rss"),
    ],
    ids=["utm vs http+www+slash", "amp host+segment vs fragment", "outputType",
         "mobile host vs desktop", "two DW feeds", "IRI vs escaped", "NYT amp.html"],
)
def test_variants_meet(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),
        ("https://example.com/world/a", "https://example.com/sport/a"),
        ("https://example.com/a", "https://example.org/a"),
        ("https://example.com/caf%C3%A9", "https://example.com/cafe"),
        ("https://m.example.com/a", "https://m.example.com/b"),
    ],
    ids=["different id", "different section", "different site", "accent matters",
         "mobile host, other page"],
)
def test_different_pages_stay_apart(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)
