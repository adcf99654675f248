"""One story, two feeds, two instances: one alert per (rule, story, notifier).

Each instance has its own in-memory story desk; before assigning, it catches
up with the stories the others stored (under an advisory lock on PostgreSQL,
the write lock on SQLite), so the second instance finds the first's story by
its canonical URL or by a similar title, and ``UNIQUE (rule, story_id,
notifier)`` holds whichever instance stores the item first.
"""

from __future__ import annotations

import asyncio

from monitor.config import load_config
from monitor.fetch import make_client
from monitor.pipeline import Poller
from monitor.plan import plan_from_config
from monitor.store import FeedSpec, Store, utcnow
from monitor.story_desk import StoryDesk
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.monitor.polling_kit import rss
from tests.support import FeedServer

STORY = {"title": "Parliament passes the budget after a night session",
         "link": "http://127.0.0.1/news/budget-vote?utm_source=rss"}


def test_the_same_story_on_two_instances_alerts_once(
    database_url: str, feed_server: FeedServer  # noqa: F811
) -> None:
    _two_instances(database_url, feed_server, ap={"link": "http://127.0.0.1/news/budget-vote"})


def _two_instances(url: str, feed_server: FeedServer, *, ap: dict[str, str]) -> None:
    """dw carries STORY, ap the same story with ``ap``'s changes; each polled by its own
    instance; one alert, one story."""
    feed_server.serve_feed("/dw.xml", rss([{**STORY, "guid": "dw-1"}]), etag="dw")
    feed_server.serve_feed("/ap.xml", rss([{**STORY, "guid": "ap-9", **ap}]), etag="ap")
    config = load_config(
        f'database: "{url}"\nfeeds:\n'
        f"  - name: dw\n    url: {feed_server.url('/dw.xml')}\n"
        f"  - name: ap\n    url: {feed_server.url('/ap.xml')}\n"
        "notifiers:\n  desk:\n    type: console\n"
        "rules:\n  - name: budget\n    query: budget\n    notify: [desk]\n",
        source="config.yaml", environ={})
    store = Store.open(url)
    store.sync_feeds([FeedSpec(name=f.name, url=f.url) for f in config.feeds], now=utcnow())

    async def each_instance_polls_one_feed() -> None:
        client = make_client(user_agent=None, max_connections=4)
        try:
            pollers = {}
            for instance, feed in (("desk:1", "dw"), ("desk:2", "ap")):
                # Both instances run already: their desks were loaded before either poll.
                pollers[feed] = Poller(store=store, client=client,
                                       plan=plan_from_config(config), instance_id=instance)
                pollers[feed].stories = StoryDesk.load(store)
            for feed, poller in pollers.items():
                state = store.feed(feed)
                assert state is not None
                outcome = await poller.poll_feed(state)
                assert outcome.hits == 1, outcome
        finally:
            await client.aclose()

    try:
        asyncio.run(each_instance_polls_one_feed())
        deliveries = store.deliveries()
        stories = store.stories()
    finally:
        store.close()
    assert [(d["rule"], d["notifier"], d["feed"]) for d in deliveries] == [
        ("budget", "desk", "dw")]
    assert len(stories) == 1


def test_a_near_duplicate_on_two_instances_alerts_once(
    database_url: str, feed_server: FeedServer  # noqa: F811
) -> None:
    same_story_other_link = {"title": "Parliament passes the budget after night session",
                             "link": "http://127.0.0.1/other/story-77"}
    _two_instances(database_url, feed_server, ap=same_story_other_link)
