from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.parse import (
    MAX_ITEM_KEY_LENGTH,
    FeedParseError,
    ParsedFeed,
    ParsedItem,
    canonical_link,
    parse_date,
    parse_feed,
    resolve_link,
)

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "feeds"
FEED_URL = "https://news.example.org/world/feed.xml"


def rss(*items: str, channel_extra: str = "", prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}\n'
        '<rss version="2.0"><channel><title>Example News</title>'
        f"<link>https://news.example.org/</link>{channel_extra}"
        + "".join(f"<item>{item}</item>" for item in items)
        + "</channel></rss>"
    ).encode()


def parse(body: bytes, url: str = FEED_URL, content_type: str | None = None) -> ParsedFeed:
    return parse_feed(body, url=url, content_type=content_type)


def only_item(feed: ParsedFeed) -> ParsedItem:
    assert len(feed.items) == 1
    return feed.items[0]


# --------------------------------------------------------------------------- item identity


def test_unique_guid_is_the_key() -> None:
    feed = parse(rss("<guid>urn:a</guid><title>A</title>", "<guid>urn:b</guid><title>B</title>"))
    assert [item.item_key for item in feed.items] == ["guid:urn:a", "guid:urn:b"]


def test_repeated_guids_are_combined_with_the_link() -> None:
    # Some publishers send one guid for every item.
    feed = parse(
        rss(
            "<guid>same</guid><title>A</title><link>https://news.example.org/a</link>",
            "<guid>same</guid><title>B</title><link>https://news.example.org/b</link>",
            "<guid>other</guid><title>C</title><link>https://news.example.org/c</link>",
        )
    )
    assert [item.item_key for item in feed.items] == [
        "guidlink:same https://news.example.org/a",
        "guidlink:same https://news.example.org/b",
        "guid:other",
    ]


def test_without_guid_the_canonical_link_is_the_key() -> None:
    item = only_item(
        parse(rss("<title>A</title><link>HTTPS://News.Example.ORG:443/a?utm_source=rss#top</link>"))
    )
    assert item.guid is None
    assert item.item_key == "link:https://news.example.org/a"


def test_without_guid_or_link_a_hash_of_title_and_text_is_the_key() -> None:
    feed = parse(
        rss(
            "<title>Quake</title><description>Strong quake hits</description>",
            "<title>Quake</title><description>Another text</description>",
        )
    )
    keys = [item.item_key for item in feed.items]
    assert all(key.startswith("hash:") for key in keys)
    assert keys[0] != keys[1]


def test_same_item_republished_with_a_new_date_keeps_its_key() -> None:
    for item_xml in (
        "<guid>g1</guid><title>A</title>",
        "<title>A</title><link>https://news.example.org/a</link>",
        "<title>A</title><description>text</description>",
    ):
        first = only_item(parse(rss(item_xml + "<pubDate>Mon, 02 Jan 2023 10:00:00 GMT</pubDate>")))
        again = only_item(parse(rss(item_xml + "<pubDate>Tue, 03 Jan 2023 12:00:00 GMT</pubDate>")))
        assert first.published_at != again.published_at
        assert first.item_key == again.item_key


def test_a_link_shared_by_different_items_identifies_none_of_them() -> None:
    # nixos.org points every item at its news page.
    feed = parse(
        rss(
            "<title>Release 1</title><link>https://nixos.example/news.html</link>",
            "<title>Release 2</title><link>https://nixos.example/news.html</link>",
        )
    )
    keys = [item.item_key for item in feed.items]
    assert all(key.startswith("hash:") for key in keys)
    assert len(set(keys)) == 2


def test_copies_of_one_item_share_one_key() -> None:
    copy = "<title>A</title><link>https://news.example.org/a</link>"
    feed = parse(rss(copy, copy))
    assert feed.items[0].item_key == feed.items[1].item_key == "link:https://news.example.org/a"


def test_key_kinds_never_collide() -> None:
    same_text = "https://news.example.org/a"
    by_guid = only_item(parse(rss(f"<guid>{same_text}</guid>")))
    by_link = only_item(parse(rss(f"<link>{same_text}</link>")))
    assert by_guid.item_key != by_link.item_key


def test_overlong_guid_is_hashed_to_a_bounded_key() -> None:
    feed = parse(rss(f"<guid>{'x' * 2000}</guid>", f"<guid>{'x' * 1999}y</guid>"))
    keys = [item.item_key for item in feed.items]
    assert all(key.startswith("guid:sha256:") and len(key) <= MAX_ITEM_KEY_LENGTH for key in keys)
    assert keys[0] != keys[1]


def test_atom_entry_id_is_the_guid() -> None:
    body = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
<entry><id>tag:example.org,2024:1</id><title>A</title>
<link rel="alternate" href="https://example.org/a"/><updated>2024-01-02T03:04:05Z</updated></entry>
</feed>"""
    item = only_item(parse(body))
    assert item.item_key == "guid:tag:example.org,2024:1"
    assert item.published_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# --------------------------------------------------------------------------- links

LINK_CASES = [
    ("absolute", "https://other.example/x", FEED_URL, "https://other.example/x"),
    ("root-relative", "/world/a.html", FEED_URL, "https://news.example.org/world/a.html"),
    ("path-relative", "a.html", FEED_URL, "https://news.example.org/world/a.html"),
    ("scheme-relative", "//cdn.example.org/a", FEED_URL, "https://cdn.example.org/a"),
    (
        "scheme-less own host",
        "news.example.org/world/a",
        FEED_URL,
        "https://news.example.org/world/a",
    ),
    (
        "www variant of own host",
        "www.coghlan.me/post",
        "https://coghlan.me/feed.xml",
        "https://www.coghlan.me/post",
    ),
    ("javascript refused", "javascript:alert(1)", FEED_URL, None),
    ("mailto refused", "mailto:desk@example.org", FEED_URL, None),
    ("blank", "   ", FEED_URL, None),
    ("surrounding whitespace", "  https://a.example/x \n", FEED_URL, "https://a.example/x"),
]


@pytest.mark.parametrize(
    ("link", "base", "expected"), [c[1:] for c in LINK_CASES], ids=[c[0] for c in LINK_CASES]
)
def test_resolve_link(link: str, base: str, expected: str | None) -> None:
    assert resolve_link(link, base) == expected


def test_a_guid_that_is_no_url_does_not_become_a_link() -> None:
    item = only_item(parse(rss("<guid>12345</guid><title>A</title>")))
    assert item.link is None
    assert item.item_key == "guid:12345"


def test_a_permalink_guid_is_the_link_when_there_is_no_link() -> None:
    item = only_item(parse(rss("<guid>https://news.example.org/a</guid><title>A</title>")))
    assert item.link == "https://news.example.org/a"


def test_relative_item_links_are_resolved_against_the_feed_url() -> None:
    feed = parse(rss("<guid>1</guid><title>A</title><link>/world/2024/a.html</link>"))
    assert only_item(feed).link == "https://news.example.org/world/2024/a.html"


def test_atom_relative_links_honour_xml_base() -> None:
    body = b"""<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example.net/posts/">
<title>T</title><link href="/"/>
<entry><id>1</id><title>A</title><link href="first.html"/></entry></feed>"""
    feed = parse(body)
    assert only_item(feed).link == "https://blog.example.net/posts/first.html"
    assert feed.link == "https://blog.example.net/"


@pytest.mark.parametrize(
    ("name", "url", "expected_prefix"),
    [
        ("netnewswire__qemu.atom", "https://www.qemu.org/feed.xml", "https://www.qemu.org/"),
        (
            "feedjira__SamRuby.xml",
            "https://intertwingly.net/blog/index.atom",
            "https://intertwingly.net/blog/",
        ),
        (
            "fastfeedparser__4059f23db954f1b5",
            "https://alexblackie.com/index.xml",
            "https://alexblackie.com/",
        ),
        ("fastfeedparser__bd04b85676aee76e", "https://coghlan.me/rss.xml", "https://coghlan.me/"),
    ],
)
def test_corpus_relative_and_schemeless_links_become_absolute(
    name: str, url: str, expected_prefix: str
) -> None:
    feed = parse((CORPUS / name).read_bytes(), url=url)
    assert feed.items
    for item in feed.items:
        assert item.link is not None and item.link.startswith(expected_prefix), item.link


CANONICAL_CASES = [
    ("lowercases scheme and host", "HTTPS://Example.ORG/Path", "https://example.org/Path"),
    ("drops default port and fragment", "https://example.org:443/a#x", "https://example.org/a"),
    ("keeps other ports", "http://example.org:8080/a", "http://example.org:8080/a"),
    (
        "drops tracking parameters",
        "https://e.org/a?id=3&utm_medium=rss&fbclid=z",
        "https://e.org/a?id=3",
    ),
    ("keeps the query as is otherwise", "https://e.org/a?b=1&a=2", "https://e.org/a?b=1&a=2"),
    ("empty path becomes /", "https://e.org", "https://e.org/"),
]


@pytest.mark.parametrize(
    ("link", "expected"), [c[1:] for c in CANONICAL_CASES], ids=[c[0] for c in CANONICAL_CASES]
)
def test_canonical_link(link: str, expected: str) -> None:
    assert canonical_link(link) == expected


# --------------------------------------------------------------------------- text


def test_html_in_titles_is_reduced_to_text() -> None:
    item = only_item(
        parse(rss("<title><![CDATA[<b>Breaking</b>: PM &amp; <i>cabinet</i>  resign]]></title>"))
    )
    assert item.title == "Breaking: PM & cabinet resign"


def test_atom_html_titles_are_reduced_to_text() -> None:
    feed = parse((CORPUS / "feedjira__google_alerts_atom.xml").read_bytes(), url=FEED_URL)
    assert feed.items
    assert all("<" not in item.title and "&lt;" not in item.title for item in feed.items)
    assert any("Slack" in item.title for item in feed.items)


def test_summary_and_content_are_plain_text_from_their_own_fields() -> None:
    item = only_item(
        parse(
            rss(
                "<title>A</title>"
                "<description>&lt;p&gt;Short &amp;amp; sweet&lt;/p&gt;</description>"
                "<content:encoded><![CDATA[<p>Full</p><script>x()</script><p>story</p>]]>"
                "</content:encoded>",
            ).replace(b"<rss ", b'<rss xmlns:content="http://purl.org/rss/1.0/modules/content/" ')
        )
    )
    assert item.summary == "Short & sweet"
    assert item.content == "Full\nstory"


def test_author_and_categories() -> None:
    item = only_item(
        parse(
            rss(
                "<title>A</title><author>desk@example.org (World Desk)</author>"
                "<category>World</category><category> Europe </category><category>World</category>"
            )
        )
    )
    assert "World Desk" in item.author
    assert item.categories == ("World", "Europe")


def test_feed_title_link_and_ttl() -> None:
    feed = parse(rss(channel_extra="<ttl>30</ttl>"))
    assert feed.title == "Example News"
    assert feed.link == "https://news.example.org/"
    assert feed.ttl == timedelta(minutes=30)


@pytest.mark.parametrize("ttl", ["abc", "-5", "0", ""])
def test_nonsense_ttl_is_ignored(ttl: str) -> None:
    assert parse(rss("<title>A</title>", channel_extra=f"<ttl>{ttl}</ttl>")).ttl is None


# --------------------------------------------------------------------------- dates

DATE_CASES = [
    ("RFC 822", "Tue, 17 Feb 2026 18:55:33 GMT", datetime(2026, 2, 17, 18, 55, 33, tzinfo=UTC)),
    (
        "RFC 822 offset",
        "Wed, 18 Feb 2026 11:13:55 +0900",
        datetime(2026, 2, 18, 2, 13, 55, tzinfo=UTC),
    ),
    ("ISO 8601", "2026-02-18T02:12:29Z", datetime(2026, 2, 18, 2, 12, 29, tzinfo=UTC)),
    ("ISO with -0500", "2026-02-17T17:36:36-0500", datetime(2026, 2, 17, 22, 36, 36, tzinfo=UTC)),
    ("ISO with space", "2019-05-18 10:58:46 +0300", datetime(2019, 5, 18, 7, 58, 46, tzinfo=UTC)),
    ("Italian", "mer, 16 nov 2022 00:38:15 +0100", datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)),
    (
        "Italian Tuesday is not March",
        "mar, 15 nov 2022 10:00:00 +0100",
        datetime(2022, 11, 15, 9, tzinfo=UTC),
    ),
    (
        "Portuguese",
        "Seg, 24 Set 2018 19:42:40 -0300",
        datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC),
    ),
    ("French juin", "3 juin 2020", datetime(2020, 6, 3, tzinfo=UTC)),
    ("French juillet", "3 juillet 2020", datetime(2020, 7, 3, tzinfo=UTC)),
    ("slashes, no zone", "2020/1/10 14:33:00", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),
    (
        "JavaScript toString",
        "Mon Jun 22 2015 20:12:20 GMT+0900 (JST)",
        datetime(2015, 6, 22, 11, 12, 20, tzinfo=UTC),
    ),
    (
        "12-hour clock",
        "Sat, Dec 16 2023 02:02:33 PM",
        datetime(2023, 12, 16, 14, 2, 33, tzinfo=UTC),
    ),
    ("US zone name", "19 Dec 2013 9:00:00 EST", datetime(2013, 12, 19, 14, tzinfo=UTC)),
    ("Z as a zone", "Tue, 15 Nov 2022 20:15:04 Z", datetime(2022, 11, 15, 20, 15, 4, tzinfo=UTC)),
    (
        "long weekday and month",
        "Friday, January 29, 2021 04:42 PM",
        datetime(2021, 1, 29, 16, 42, tzinfo=UTC),
    ),
    # A leap second, as the clock showed it: read as the second before.
    ("leap second, ISO", "2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("leap second, RFC 822", "Sat, 31 Dec 2016 23:59:60 GMT",
     datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("sixty minutes", "2016-12-31T23:60:00Z", None),
    ("garbage", "soon", None),
    ("impossible day", "Mon, 99 Jan 2020", None),
    ("empty", "", None),
    ("absurdly long", "1" * 500, None),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in DATE_CASES], ids=[c[0] for c in DATE_CASES]
)
def test_parse_date(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("pub_date", "expected"),
    [
        ("mer, 16 nov 2022 00:38:15 +0100", datetime(2022, 11, 15, 23, 38, 15, tzinfo=UTC)),
        ("2020/1/10 14:33:00", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),
        ("2026-02-17T17:36:36-0500", datetime(2026, 2, 17, 22, 36, 36, tzinfo=UTC)),
        ("not a date at all", None),
    ],
    ids=["localized", "feedparser misreads slashes", "ISO in pubDate", "garbage"],
)
def test_odd_dates_never_fail_an_item(pub_date: str, expected: datetime | None) -> None:
    item = only_item(parse(rss(f"<guid>1</guid><title>A</title><pubDate>{pub_date}</pubDate>")))
    assert item.published_at == expected
    assert item.title == "A"


def test_missing_date_is_none() -> None:
    assert only_item(parse(rss("<guid>1</guid><title>A</title>"))).published_at is None


def test_dates_are_aware_utc() -> None:
    feed = parse((CORPUS / "fastfeedparser__18138c717652f678").read_bytes(), url=FEED_URL)
    dates = [item.published_at for item in feed.items if item.published_at]
    assert dates
    assert all(date.tzinfo is not None and date.utcoffset() == timedelta(0) for date in dates)


# --------------------------------------------------------------------------- encodings

ENCODING_CASES = [
    # (corpus file, a title or summary fragment that only decodes correctly)
    ("miniflux__encoding_ISO-8859-1.xml", "Porträt für"),  # ISO-8859-1 declared
    ("miniflux__encoding_WINDOWS-1251.xml", "Цитата #17703"),  # windows-1251 declared
    ("sismics-reader__feed_rss2_ibox.xml", "Роналдо не спира да бележи"),  # windows-1251
    ("netnewswire__kc0011.rss", "建国35周年纪念，华表，和平鸽"),  # GB2312
    ("prof18-rssparser__feed-test-greek.xml", "«Πορτραίτα καραντίνας»"),  # ISO-8859-7
    ("rss-parser__uolNoticias.rss", "simulações de 2º turno"),  # undeclared latin-1
    ("miniflux__no_encoding_ISO-8859-1.xml", "La criminalité liée surtout"),  # undeclared latin-1
    ("rss-parser__encoding.rss", "Mãe de utente é a nova presidente"),  # ISO-8859-1
    ("feedreader-net__Rss20FinanzenNet.xml", "Kursziel für NVIDIA"),  # says latin-1, is UTF-8
]


@pytest.mark.parametrize(("name", "fragment"), ENCODING_CASES, ids=[c[0] for c in ENCODING_CASES])
def test_encodings_decode_to_the_right_text(name: str, fragment: str) -> None:
    feed = parse((CORPUS / name).read_bytes())
    texts = [f"{item.title}\n{item.summary}" for item in feed.items]
    assert any(fragment in text for text in texts)
    assert not any("\ufffd" in text or "Ã" in text for text in texts)


def test_declared_utf16_but_utf8_bytes_from_the_corpus() -> None:
    feed = parse((CORPUS / "fastfeedparser__9e0834333e854116").read_bytes())
    assert len(feed.items) == 59
    assert feed.items[0].title == "So you want to parse a PDF?"


def test_declared_utf16_but_utf8_bytes_hand_written() -> None:
    body = rss("<guid>1</guid><title>Café über</title>").replace(
        b'encoding="utf-8"', b'encoding="utf-16"'
    )
    assert only_item(parse(body)).title == "Café über"


def test_real_utf16_with_bom() -> None:
    body = rss("<guid>1</guid><title>Café über</title>").replace(
        b'encoding="utf-8"', b'encoding="utf-16"'
    )
    assert only_item(parse(body.decode().encode("utf-16"))).title == "Café über"


def test_invalid_utf8_still_yields_items() -> None:
    body = rss(
        "<guid>1</guid><title>bad \xff\xfe bytes</title>".encode("latin-1").decode("latin-1")
    )
    body = body.replace("bad \u00ff\u00fe".encode(), b"bad \xff\xfe")
    item = only_item(parse(body))
    assert item.title.startswith("bad ") and item.title.endswith(" bytes")


def test_character_references_xml_forbids_lose_only_themselves() -> None:
    # Expat refuses &#xD800; and feedparser's loose parser then failed on the lone
    # surrogate, so one such title made the whole feed unreadable.
    body = rss(
        "<guid>1</guid><title>Budget &#xD800; &#0; &#x110000; &#65;&#x1F600; &eacute;</title>",
        "<guid>2</guid><title>Second item</title>",
    )
    feed = parse(body)
    assert [(item.guid, item.title) for item in feed.items] == [
        ("1", "Budget \ufffd \ufffd \ufffd A\U0001f600 \u00e9"),
        ("2", "Second item"),
    ]


def test_http_charset_overrides_a_missing_declaration() -> None:
    body = (
        '<rss version="2.0"><channel><title>T</title>'
        "<item><guid>1</guid><title>Ж</title></item></channel></rss>"
    )
    feed = parse(
        body.encode("windows-1251"), content_type="application/rss+xml; charset=windows-1251"
    )
    assert only_item(feed).title == "Ж"


def test_utf8_body_labelled_latin1_by_the_server_is_read_as_utf8() -> None:
    # feedparser tries UTF-8 before the labelled charset; this pins that behaviour.
    feed = parse(
        rss("<guid>1</guid><title>Zürich</title>"), content_type="text/xml; charset=ISO-8859-1"
    )
    assert only_item(feed).title == "Zürich"


def test_latin1_body_labelled_latin1_by_the_server_is_read_as_latin1() -> None:
    body = rss("<guid>1</guid><title>Zürich</title>").decode().replace("utf-8", "iso-8859-1")
    feed = parse(body.encode("latin-1"), content_type="text/xml; charset=ISO-8859-1")
    assert only_item(feed).title == "Zürich"


def test_xml_feed_labelled_json_is_still_read() -> None:
    feed = parse(rss("<guid>1</guid><title>A</title>"), content_type="application/json")
    assert only_item(feed).title == "A"


def test_text_xml_without_charset_does_not_force_ascii() -> None:
    # RFC 3023 would default text/xml to us-ascii; no real server means that.
    feed = parse(rss("<guid>1</guid><title>Zürich</title>"), content_type="text/xml")
    assert only_item(feed).title == "Zürich"


# --------------------------------------------------------------------------- errors

HTML_PAGE_CASES = [
    ("doctype", b"<!DOCTYPE html><html><head><title>Home</title></head><body>Hi</body></html>"),
    ("bare html", b"  <html lang='en'><body><p>Moved</p></body></html>"),
    ("comment first", b"<!-- cdn --><!doctype HTML><html><body></body></html>"),
    ("bom", b"\xef\xbb\xbf<!DOCTYPE html><html></html>"),
    ("fragment with body", b"<!-- x --><meta charset=utf-8><body><p>Error 500</p></body>"),
    (
        "xml declaration then xhtml",
        b'<?xml version="1.0"?>\n<!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml"></html>',
    ),
]


@pytest.mark.parametrize(
    "body", [c[1] for c in HTML_PAGE_CASES], ids=[c[0] for c in HTML_PAGE_CASES]
)
def test_html_page_instead_of_a_feed(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="HTML page"):
        parse(body, content_type="text/html; charset=utf-8")


def test_html_page_without_content_type() -> None:
    with pytest.raises(FeedParseError, match="not a feed: the server sent an HTML page"):
        parse(b"<!DOCTYPE html><html><body>Login</body></html>")


def test_feed_served_as_text_html_is_still_read() -> None:
    feed = parse(rss("<guid>1</guid><title>A</title>"), content_type="text/html")
    assert only_item(feed).title == "A"


@pytest.mark.parametrize("body", [b"", b"   \r\n\t "], ids=["empty", "whitespace"])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(FeedParseError, match="empty response body"):
        parse(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"Service temporarily unavailable", "not a feed"),
        (b'<?xml version="1.0"?><config><x>1</x></config>', "neither RSS nor Atom"),
        (
            b'<?xml version="1.0"?>\n<rss version="2.0">\n<channel>\n<title>Cut',
            r"malformed XML at line \d+",
        ),
    ],
    ids=["plain text", "xml but not a feed", "truncated before any item"],
)
def test_not_a_feed(body: bytes, message: str) -> None:
    with pytest.raises(FeedParseError, match=message):
        parse(body)


def test_malformed_feed_with_items_is_accepted() -> None:
    # Bare "&" makes the document not well-formed; the items are still there.
    feed = parse(rss("<guid>1</guid><title>Q&A</title><link>https://e.org/?a=1&b=2</link>"))
    item = only_item(feed)
    assert item.title == "Q&A"
    assert item.link == "https://e.org/?a=1&b=2"


def test_valid_feed_without_items_is_empty_not_an_error() -> None:
    feed = parse(rss())
    assert feed.items == ()
    assert feed.title == "Example News"


def test_body_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        parse_feed("https://example.org/feed.xml", url=FEED_URL)  # type: ignore[arg-type]
