"""The store's side of article text: awaiting rows, claims and leases, matching once."""

from __future__ import annotations

from datetime import timedelta

from monitor.store import FeedSpec, FeedUpdate, NewHit, NewItem, Store, utcnow
from tests.dbs import database_url, postgres_url  # noqa: F401 - fixtures

LEASE = timedelta(seconds=90)


def _item(key: str) -> NewItem:
    return NewItem(item_key=key, guid=key, link=f"https://news.example.org/{key}",
                   title=f"Title {key}", summary="teaser", content="", author="",
                   categories=(), published_at=None)


def _hit(key: str) -> NewHit:
    return NewHit(rule="csto-exit", item_key=key, severity="normal", matched_terms=(),
                  snippet="…CSTO…", marks=(), notifiers=("console",))


def _stored(url: str, *, awaiting: bool, keys: tuple[str, ...] = ("a", "b")) -> Store:
    store = Store.open(url)
    now = utcnow()
    store.sync_feeds([FeedSpec(name="teasers", url="https://news.example.org/feed")], now=now)
    feed = store.feed("teasers")
    assert feed is not None
    store.store_poll(feed.id, [_item(k) for k in keys], awaiting_text=awaiting,
                     match=lambda items: [],
                     update_=FeedUpdate(polled_at=now, next_poll_at=now, status=200, error=None))
    return store


def test_only_full_text_items_await_text(database_url: str) -> None:  # noqa: F811
    store = _stored(database_url, awaiting=False)
    assert store.claim_awaiting_text(now=utcnow(), lease=LEASE, claimer="p1") == []
    store.close()


def test_a_claim_holds_until_its_lease_expires(database_url: str) -> None:  # noqa: F811
    store = _stored(database_url, awaiting=True)
    now = utcnow()
    first = store.claim_awaiting_text(now=now, lease=LEASE, claimer="p1")
    assert [a.item.item_key for a in first] == ["a", "b"]
    assert first[0].item.link == "https://news.example.org/a" and first[0].feed_name == "teasers"
    # Another process sees nothing while the claim holds...
    assert store.claim_awaiting_text(now=now + timedelta(seconds=30), lease=LEASE,
                                     claimer="p2") == []
    # ...and takes the items over once it expired (the first one died).
    later = store.claim_awaiting_text(now=now + LEASE + timedelta(seconds=1), lease=LEASE,
                                      claimer="p2")
    assert [a.item.item_key for a in later] == ["a", "b"]
    store.close()


def test_an_item_is_matched_once(database_url: str) -> None:  # noqa: F811
    store = _stored(database_url, awaiting=True)
    now = utcnow()
    (a, b) = store.claim_awaiting_text(now=now, lease=LEASE, claimer="p1")
    hit_ids = store.store_article_match(a.item_id, url="https://news.example.org/a",
                                        text="CSTO " * 60, failure=None, hits=[_hit("a")], now=now)
    assert hit_ids is not None and len(hit_ids) == 1
    # A second pass whose claim overlapped writes nothing and alerts nothing.
    assert store.store_article_match(a.item_id, url=None, text=None, failure="late",
                                     hits=[_hit("a")], now=now) is None
    assert len(store.deliveries()) == 1
    state = store.article_state(a.item_id)
    assert state is not None and state.failure is None and state.text == "CSTO " * 60
    # The failure of the other item is stored and counted per feed.
    assert store.store_article_match(b.item_id, url=None, text=None, failure="HTTP 404 Not Found",
                                     hits=[], now=now) == []
    assert store.full_text_failures() == {"teasers": (1, "HTTP 404 Not Found")}
    # Matched items are never claimed again, whatever the time.
    assert store.claim_awaiting_text(now=now + timedelta(days=1), lease=LEASE,
                                     claimer="p3") == []
    store.close()


def test_claims_can_be_limited_to_one_feed(database_url: str) -> None:  # noqa: F811
    store = _stored(database_url, awaiting=True)
    feed = store.feed("teasers")
    assert feed is not None
    assert store.claim_awaiting_text(now=utcnow(), lease=LEASE, claimer="p1",
                                     feed_id=feed.id + 1) == []
    assert len(store.claim_awaiting_text(now=utcnow(), lease=LEASE, claimer="p1",
                                         feed_id=feed.id)) == 2
    store.close()
