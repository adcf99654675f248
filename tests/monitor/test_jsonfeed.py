from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.jsonfeed import parse_json_feed
from monitor.parse import FeedParseError, parse_feed

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "feeds"
DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"
URL = "https://blog.example.net/feed.json"


def json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def test_minimal_json_feed_1_1() -> None:
    feed = parse_feed((DATA / "minimal_jsonfeed_1_1.json").read_bytes(), url=URL)
    assert feed.title == "Minimal JSON Feed"
    assert feed.link == "https://blog.example.net/"
    assert feed.ttl is None
    first, second = feed.items
    assert first.item_key == "guid:https://blog.example.net/2024/first"
    assert first.link == "https://blog.example.net/2024/first"
    assert first.title == "First <post> & more"  # title is plain text: kept literally
    assert first.summary == "Short summary"
    assert first.content == "Hello world\nSecond paragraph"
    assert first.author == "Ana Author, Bo Writer"
    assert first.categories == ("politics", "europe")
    assert first.published_at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    # Relative url resolved; content_text used when there is no content_html.
    assert second.link == "https://blog.example.net/2024/second"
    assert second.content == "Just text <not a tag>"
    assert second.author == "Feed Author"  # falls back to the feed's authors
    assert second.published_at is None


def test_json_feed_1_0_with_author_object_and_numeric_id() -> None:
    body = json_body(
        {
            "version": "https://jsonfeed.org/version/1",
            "title": "Old style",
            "author": {"name": "Solo"},
            "items": [
                {"id": 42, "url": "https://e.org/42", "content_html": "<p>x</p>"},
                {"id": True, "content_text": "no usable id, no url"},
            ],
        }
    )
    numeric, no_id = parse_json_feed(body, url=URL).items
    assert numeric.guid == "42"
    assert numeric.item_key == "guid:42"
    assert numeric.author == "Solo"
    assert no_id.guid is None
    assert no_id.item_key.startswith("hash:")


def test_external_url_is_the_link_when_url_is_missing() -> None:
    body = json_body(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "items": [{"id": "1", "external_url": "https://x.org/"}],
        }
    )
    assert parse_json_feed(body, url=URL).items[0].link == "https://x.org/"


def test_dispatch_by_content_type_and_by_leading_brace() -> None:
    body = b"\n  " + json_body(
        {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "a"}]}
    )
    assert parse_feed(body, url=URL).items[0].guid == "a"
    assert parse_feed(body, url=URL, content_type="application/feed+json").items[0].guid == "a"


def test_double_escaped_content_html_prefers_content_text() -> None:
    body = json_body(
        {
            "version": "https://jsonfeed.org/version/1",
            "items": [{"id": "1", "content_html": "&lt;p&gt;Hi&lt;/p&gt;", "content_text": "Hi"}],
        }
    )
    assert parse_json_feed(body, url=URL).items[0].content == "Hi"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON feed"),
        (b"[1, 2]", "not an object"),
        (b'{"hello": "world"}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "'items' is missing"),
        (b'{"title": "\xff\xfe"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
    ids=["syntax", "array", "other JSON", "items not a list", "not utf-8", "deeply nested"],
)
def test_broken_json_feeds(body: bytes, message: str) -> None:
    with pytest.raises(FeedParseError, match=message):
        parse_feed(body, url=URL, content_type="application/json")


# (file, items, a title that must be present, a link prefix every item has)
CORPUS_CASES = [
    (
        "netnewswire__DaringFireball.json",
        48,
        "The Talk Show: ‘I Do Like Throwing a Baby’",
        "https://daringfireball.net/",
    ),
    (
        "netnewswire__inessential.json",
        20,
        "James Dempsey and the Breakpoints Benefit App Camp for Girls",
        "http://inessential.com/",
    ),
    ("netnewswire__3960.json", 20, "Die Rückkehr von <i> und <b>", "https://journal.3960.org/"),
    (
        "feeder__cowboyprogrammer_feed.json",
        10,
        "A comparison between fixed and variable interest rates",
        "https://cowboyprogrammer.org/",
    ),
    (
        "fastfeedparser__d4b7ab74da763119",
        10,
        "Using your own Supabase signing keys",
        "https://humanwhocodes.com/",
    ),
    ("feedjira__json_feed_with_escaped_uris.json", 30, "New Font", "https://lukedorny.com/"),
]


@pytest.mark.parametrize(
    ("name", "count", "title", "prefix"), CORPUS_CASES, ids=[c[0] for c in CORPUS_CASES]
)
def test_corpus_json_feeds(name: str, count: int, title: str, prefix: str) -> None:
    feed = parse_feed((CORPUS / name).read_bytes(), url=URL)
    assert len(feed.items) == count
    assert title in [item.title for item in feed.items]
    for item in feed.items:
        assert item.item_key.startswith("guid:")
        assert item.link and item.link.startswith(prefix)
        assert item.published_at is not None and item.published_at.tzinfo is not None
    assert len({item.item_key for item in feed.items}) == count


def test_corpus_json_feed_content_is_plain_text() -> None:
    feed = parse_feed((CORPUS / "netnewswire__DaringFireball.json").read_bytes(), url=URL)
    contents = [item.content for item in feed.items if item.content]
    assert contents
    assert not any("<p>" in content or "&#8217;" in content for content in contents)


def test_scripting_news_rss_in_json_is_read() -> None:
    feed = parse_feed((CORPUS / "netnewswire__ScriptingNews.json").read_bytes(), url=URL)
    assert feed.title == "Scripting News"
    assert len(feed.items) == 50
    assert all(item.link and item.link.startswith("http://scripting.com/") for item in feed.items)
    assert all(item.published_at is not None for item in feed.items)


def test_an_item_id_of_thousands_of_digits_does_not_fail_the_feed() -> None:
    # Python reads at most 4,300 digits into an int: the whole feed was refused.
    digits = "7" * 5000
    body = ('{"version": "https://jsonfeed.org/version/1.1", "items": ['
            f'{{"id": {digits}, "content_text": "long id"}},'
            '{"id": 42, "content_text": "short id"}]}').encode()
    long_id, short_id = parse_json_feed(body, url=URL).items
    assert long_id.guid == digits
    assert short_id.guid == "42"
