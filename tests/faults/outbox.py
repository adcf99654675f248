"""Filling a real store with hits and their delivery rows, for delivery tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.store import FeedSpec, FeedUpdate, NewHit, NewItem, Store

FEED = "wire"


def store_hits(
    store: Store,
    *,
    rule: str,
    notifiers: Sequence[str],
    keys: Sequence[str],
    now: datetime,
    severity: str = "normal",
) -> list[int]:
    """One item per key, each a hit of ``rule`` for ``notifiers``; returns the hit ids."""
    if store.feed(FEED) is None:
        store.sync_feeds([FeedSpec(FEED, "http://127.0.0.1:1/wire")], now=now)
    feed = store.feed(FEED)
    assert feed is not None
    items = [
        NewItem(item_key=key, guid=key, link=f"https://news.example/{key}?a=1&b=2",
                title=f"Story {key}", summary=f"About {key}.", content="", author="",
                categories=(), published_at=now)
        for key in keys
    ]

    def match(new: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule=rule, item_key=i.item_key, severity=severity, matched_terms=(),
                       snippet=i.summary, marks=(), notifiers=tuple(notifiers)) for i in new]

    return store.store_poll(feed.id, items, match=match, update_=FeedUpdate(
        polled_at=now, next_poll_at=now + timedelta(minutes=5), status=200, error=None))
