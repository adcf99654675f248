"""Story dedup in the database, on SQLite and PostgreSQL, across restarts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from monitor.store import FeedSpec, FeedUpdate, NewHit, NewItem, Store
from monitor.story_desk import StoryDesk
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)

T0 = datetime(2026, 2, 18, 9, 0, tzinfo=UTC)
LEAD = "Armenia will not take part in events of the Russian-led Collective Security Treaty."


def item(key: str, title: str, link: str) -> NewItem:
    return NewItem(item_key=key, guid=key, link=link, title=title, summary=LEAD, content="",
                   author="", categories=(), published_at=T0)


def hits_for(rules: Sequence[str]):  # type: ignore[no-untyped-def]
    def match(items: Sequence[NewItem]) -> list[NewHit]:
        return [NewHit(rule=rule, item_key=i.item_key, severity="normal", matched_terms=(),
                       snippet="", marks=(), notifiers=("desk", "mail")) for i in items
                for rule in rules]
    return match


def poll(store: Store, desk: StoryDesk, feed: str, items: list[NewItem], at: datetime) -> None:
    feed_id = next(s.id for s in store.due_feeds(now=at, force=True) if s.name == feed)
    update = FeedUpdate(polled_at=at, next_poll_at=at + timedelta(minutes=5), status=200,
                        error=None)
    store.store_poll(feed_id, items, update_=update, match=hits_for(["csto", "armenia"]),
                     stories=desk)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    opened = Store.open(database_url)
    opened.sync_feeds([FeedSpec(n, f"http://127.0.0.1:1/{n}") for n in ("a", "b", "c")],
                      now=T0)
    yield opened
    opened.close()


def test_one_alert_per_rule_story_and_notifier_across_restarts(store: Store,
                                                               database_url: str) -> None:  # noqa: F811
    modes = {"desk": "edit", "mail": "thread"}
    desk = StoryDesk.load(store, update_modes=modes, clock=lambda: T0)
    poll(store, desk, "a", [item("a1", "Armenia seeks to distance itself from Russia's pact",
                                 "https://x.example/armenia?utm_source=rss")], T0)
    assert len(store.deliveries()) == 4  # 2 rules x 2 notifiers

    # A restart: a new store and desk, loaded from the database.
    store.close()
    reopened = Store.open(database_url)
    desk = StoryDesk.load(reopened, update_modes=modes, clock=lambda: T0 + timedelta(minutes=4))
    assert len(desk.index) == 1
    poll(reopened, desk, "b", [item("b1", "Armenia seeks distance from Russia's pact — report",
                                    "https://amp.x.example/armenia/amp/")],
         T0 + timedelta(minutes=4))
    poll(reopened, desk, "c", [item("c1", "Armenia seeks to distance itself from Russia's pact",
                                    "https://wire.example/armenia-pact")],
         T0 + timedelta(minutes=9))
    try:
        assert len(reopened.deliveries()) == 4  # no new top-level alert
        updates = reopened.story_updates()
        assert sorted((u["rule"], u["notifier"], u["mode"]) for u in updates) == sorted(
            (rule, notifier, mode) for rule in ("csto", "armenia")
            for notifier, mode in modes.items() for _ in ("b", "c"))
        [story] = reopened.stories()
        assert [(i["feed"], i["reason"]) for i in story["items"]] == [
            ("a", "first"), ("b", "url"), ("c", "similar")]
        sources = reopened.story_sources(story["id"])
        assert [(s.feed, s.seen_at - T0) for s in sources] == [
            ("a", timedelta(0)), ("b", timedelta(minutes=4)), ("c", timedelta(minutes=9))]
    finally:
        reopened.close()


def test_off_queues_no_updates_and_a_failed_write_forgets_its_stories(store: Store) -> None:
    desk = StoryDesk.load(store, update_modes={"desk": "off", "mail": "off"}, clock=lambda: T0)
    poll(store, desk, "a", [item("a1", "Quake hits Turkey", "https://x.example/q")], T0)

    def broken(items: Sequence[NewItem]) -> list[NewHit]:
        raise RuntimeError("matching failed")

    feed_id = next(s.id for s in store.due_feeds(now=T0, force=True) if s.name == "b")
    with pytest.raises(RuntimeError):
        store.store_poll(feed_id, [item("b9", "Storm floods Rhine towns", "https://y.example/s")],
                         update_=FeedUpdate(polled_at=T0, next_poll_at=T0, status=200,
                                            error=None), match=broken, stories=desk)
    assert len(desk.index) == 1  # the rolled-back story is not in memory either
    poll(store, desk, "b", [item("b1", "Quake hits Turkey", "https://x.example/q")], T0)
    assert store.story_updates() == []
    assert len(store.deliveries()) == 4



def no_hits(items: Sequence[NewItem]) -> list[NewHit]:
    return []


def hourly_polls(store: Store, hours: int) -> StoryDesk:
    """``hours`` simulated hours of polls through a desk on the same clock; returns it.

    Each hour feed a brings two new stories, in words no other story shares, and from
    the fourth day on feed b links a story of three days ago: it joins that story
    through the database (its URL), long after the story left the window.
    """
    now = [T0]
    desk = StoryDesk.load(store, update_modes={"desk": "off", "mail": "off"},
                          clock=lambda: now[0])
    feeds = {name: next(s.id for s in store.due_feeds(now=T0, force=True) if s.name == name)
             for name in ("a", "b")}
    for hour in range(hours):
        now[0] = at = T0 + timedelta(hours=hour)
        update = FeedUpdate(polled_at=at, next_poll_at=at + timedelta(hours=1), status=200,
                            error=None)
        fresh = [item(f"a{hour}-{n}", f"Story{hour}x{n} alpha{hour}y{n} beta{hour}z{n}",
                      f"https://x.example/{hour}/{n}") for n in range(2)]
        store.store_poll(feeds["a"], fresh, update_=update, match=no_hits, stories=desk)
        if hour >= 72:
            old = hour - 72
            late = [item(f"b{hour}", f"Story{old}x0 alpha{old}y0 beta{old}z0",
                         f"https://x.example/{old}/0")]
            store.store_poll(feeds["b"], late, update_=update, match=no_hits, stories=desk)
    return desk


def test_a_long_run_remembers_stored_items_for_the_window_only(store: Store) -> None:
    """Every item stored was remembered (so that catching up with the database would
    not add it to the index twice) for as long as the process lived: memory grew
    with each item a daemon ever stored. Eight days of hourly polls must leave no
    more than two windows' worth."""
    desk = hourly_polls(store, 8 * 24)
    window_hours = int(desk.index.window / timedelta(hours=1))
    assert len(desk._known_items) <= (2 * window_hours + 1) * 3  # three stored an hour


def test_a_long_run_keeps_urls_of_the_windows_stories_only(store: Store) -> None:
    """An item joining a story older than the window (through the database, by its
    URL) left that URL in the index for good, where nothing ever removed it: one
    more entry for every old page linked again, for as long as the daemon ran."""
    desk = hourly_polls(store, 5 * 24)
    window_hours = int(desk.index.window / timedelta(hours=1))
    assert len(desk.index) <= (window_hours + 1) * 2  # two new stories an hour
    assert len(desk.index._urls) <= (window_hours + 1) * 2
    # Linked again, an old story is still found (in the database).
    first = store.stories()[0]
    assert [(i["feed"], i["reason"]) for i in first["items"]] == [("a", "first"), ("b", "url")]
