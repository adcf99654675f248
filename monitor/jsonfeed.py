"""Read JSON Feed 1.0 and 1.1 (https://www.jsonfeed.org/version/1.1/) into a ``ParsedFeed``.

feedparser does not read JSON Feed, so this small reader follows the spec
directly. It is lenient where real feeds are sloppy and the meaning is still
clear (a numeric ``id``, a missing ``version``, ``author`` in a 1.1 feed) and
strict where nothing sensible can be read (not JSON, no ``items`` array).

Dave Winer's "RSS-in-JSON" (a top-level ``rss`` object mirroring RSS 2.0, as
served by scripting.com) is read too: it is a few lines and real feeds use it.

Text reduction, link resolution and item identity happen in
``monitor.parse.build_feed``, the same as for RSS and Atom.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from monitor.parse import FeedParseError, ParsedFeed, RawEntry, build_feed, parse_date

__all__ = ["parse_json_feed"]

_JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"


def parse_json_feed(body: bytes, *, url: str) -> ParsedFeed:
    """Parse a JSON Feed (or RSS-in-JSON) document. Raises ``FeedParseError``."""
    try:
        # JSON text is UTF-8 (RFC 8259 §8.1); "utf-8-sig" also accepts a BOM.
        document = json.loads(body.decode("utf-8-sig"), parse_int=_integer)
    except UnicodeDecodeError as exc:
        raise FeedParseError(f"malformed JSON feed: not UTF-8 ({exc.reason})") from exc
    except RecursionError as exc:
        raise FeedParseError("malformed JSON feed: nested too deeply") from exc
    except ValueError as exc:  # json.JSONDecodeError
        raise FeedParseError(f"malformed JSON feed: {exc}") from exc
    if not isinstance(document, dict):
        raise FeedParseError("not a feed: the JSON document is not an object")
    if isinstance(document.get("rss"), Mapping):
        return _parse_rss_in_json(document["rss"], url=url)
    version = document.get("version")
    items = document.get("items")
    if not isinstance(items, list):
        if isinstance(version, str) and version.startswith(_JSON_FEED_VERSION_PREFIX):
            raise FeedParseError("malformed JSON feed: 'items' is missing or not a list")
        raise FeedParseError("not a feed: the JSON document is not a JSON Feed (no 'items' list)")
    feed_authors = _author_names(document)
    entries = [_entry_from_item(item, feed_authors) for item in items if isinstance(item, Mapping)]
    return build_feed(
        title=_string(document.get("title")),
        link=_string(document.get("home_page_url")) or None,
        entries=entries,
        ttl=None,
        url=url,
    )


def _integer(digits: str) -> int | str:
    # Python refuses to read an int of more than 4,300 digits (a guard against slow
    # conversions): one such item id would fail the whole feed. Kept as its digits,
    # it is the same id text as a shorter number's str().
    return int(digits) if len(digits) <= 4000 else digits


def _entry_from_item(item: Mapping[str, Any], feed_authors: list[str]) -> RawEntry:
    # "id" is required and should be a string; 1.0 feeds in the wild use numbers
    # ("coerce it to a string", says the 1.1 spec).
    raw_id = item.get("id")
    guid = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
    content_html = _string(item.get("content_html"))
    content_text = _string(item.get("content_text"))
    if content_text and (not content_html or _is_escaped_twice(content_html)):
        content_html = _escape(content_text)
    published = parse_date(_string(item.get("date_published"))) or parse_date(
        _string(item.get("date_modified"))
    )
    tags = item.get("tags")
    return RawEntry(
        guid=guid,
        # "url" is the item's own page; "external_url" points elsewhere (a link blog).
        link=_string(item.get("url")) or _string(item.get("external_url")) or None,
        title_html=_escape(_string(item.get("title"))),
        summary_html=_escape(_string(item.get("summary"))),
        content_html=content_html,
        author=", ".join(_author_names(item) or feed_authors),
        categories=[tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else [],
        published_at=published,
    )


def _author_names(holder: Mapping[str, Any]) -> list[str]:
    """Names from 1.1 ``authors`` (array) or 1.0 ``author`` (object)."""
    authors = holder.get("authors")
    if not isinstance(authors, list):
        authors = [holder.get("author")]
    return [
        _string(author.get("name"))
        for author in authors
        if isinstance(author, Mapping) and _string(author.get("name"))
    ]


def _parse_rss_in_json(rss: Mapping[str, Any], *, url: str) -> ParsedFeed:
    channel = rss.get("channel")
    if not isinstance(channel, Mapping):
        raise FeedParseError("malformed RSS-in-JSON feed: no 'channel' object")
    items = channel.get("item") or []
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        raise FeedParseError("malformed RSS-in-JSON feed: 'item' is not a list")
    entries = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        guid = item.get("guid")
        if isinstance(guid, Mapping):  # {"isPermaLink": "true", "value": "..."}
            guid = guid.get("value")
        categories = item.get("category") or []
        if not isinstance(categories, list):
            categories = [categories]
        entries.append(
            RawEntry(
                guid=_string(guid) or None,
                link=_string(item.get("link")) or None,
                title_html=_string(item.get("title")),
                summary_html=_string(item.get("description")),
                content_html="",
                author=_string(item.get("author")),
                categories=[c for c in categories if isinstance(c, str)],
                published_at=parse_date(_string(item.get("pubDate"))),
            )
        )
    return build_feed(
        title=_string(channel.get("title")),
        link=_string(channel.get("link")) or None,
        entries=entries,
        ttl=None,
        url=url,
    )


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _is_escaped_twice(html: str) -> bool:
    """HTML that was escaped once more than it should be: no tag, only "&lt;" text."""
    return "<" not in html and "&lt;" in html


def _escape(text: str) -> str:
    """Make plain text safe to pass through ``html_to_text`` unchanged.

    JSON Feed's ``title``, ``summary`` and ``content_text`` are plain text: a
    literal "<b>" or "&amp;" there is meant to be shown as is.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;")
