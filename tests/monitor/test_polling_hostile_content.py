"""Hostile feed *content* (not hostile servers): each document is well served, but
what it says would trip the store or the parser. Polled over loopback next to a
good feed, into a real store (SQLite, or PostgreSQL in that pass)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from monitor.store import StoredItem
from tests.monitor.polling_kit import rig, rss
from tests.support import FeedServer

GOOD = rss([{"title": "Budget passes", "guid": "good-1"}])


def poll_beside_good_feed(
    tmp_path: Path, feed_server: FeedServer, body: bytes
) -> list[StoredItem]:
    """One cycle over ``body`` and a good feed; the hostile feed's stored items."""
    feed_server.set_route("/hostile", body)
    feed_server.set_route("/good", GOOD)

    async def scenario() -> list[StoredItem]:
        feeds = {"hostile": feed_server.url("/hostile"), "good": feed_server.url("/good")}
        async with rig(tmp_path, feeds) as r:
            await r.poll()
            assert r.feed("good").items_total == 1
            state = r.feed("hostile")
            assert state.last_error is None and state.consecutive_failures == 0, state
            since = r.clock() - timedelta(days=1)
            return [i for i in r.store.iter_items(since=since) if i.feed_name == "hostile"]

    return asyncio.run(scenario())


def test_nul_and_lone_surrogates_in_a_json_feed_are_stored_cleaned(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    # json.loads turns "\ud800" into a lone surrogate (no driver can encode it) and
    # "\u0000" into NUL (PostgreSQL refuses it): either failed the feed's every poll.
    body = json.dumps({
        "version": "https://jsonfeed.org/version/1.1",
        "items": [{
            "id": "id-\u0000-\ud800",
            "url": "http://127.0.0.1/a\u0000b",
            "title": "Budget \ud800 vote\u0000",
            "content_text": "Text \udfff here",
            "tags": ["econ\u0000omy", "\ud83d"],
            "authors": [{"name": "Ann\u0000 \ud800"}],
        }],
    }).encode()
    items = poll_beside_good_feed(tmp_path, feed_server, body)
    assert len(items) == 1
    item = items[0]
    assert item.guid == "id--\ufffd"
    assert item.link == "http://127.0.0.1/ab"
    assert item.title == "Budget \ufffd vote"
    assert item.content == "Text \ufffd here"
    assert item.categories == ("economy", "\ufffd")
    assert item.author == "Ann \ufffd"


def test_nul_bytes_in_an_rss_guid_and_link_are_stored_cleaned(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    # Expat refuses the NUL byte; feedparser's loose parser keeps it in the guid
    # and link (only text fields lost it, in html_to_text).
    body = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            b"<title>Desk</title><item><title>Budget\x00 vote</title>"
            b"<guid>g\x001</guid><link>http://127.0.0.1/x\x00y</link>"
            b"<category>ec\x00on</category></item></channel></rss>")
    items = poll_beside_good_feed(tmp_path, feed_server, body)
    assert [(i.guid, i.link, i.title, i.categories) for i in items] == [
        ("g1", "http://127.0.0.1/xy", "Budget vote", ("econ",))
    ]
