"""Two pollers (two instances) on one database: a slow poll keeps its feed.

The lease is short (0.4 s) and the slow feed takes 1.5 s to answer: without
renewal its lease would run out mid-poll and the second instance would poll it
too. With renewal it is polled once, and the quick feeds are split.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from monitor.config import load_config
from monitor.fetch import make_client
from monitor.pipeline import Poller, PollSummary
from monitor.plan import plan_from_config
from monitor.store import FeedSpec, Store, utcnow
from tests.dbs import database_url, postgres_url  # noqa: F401  (fixtures)
from tests.monitor.polling_kit import ONE_ITEM
from tests.support import FeedServer, Response


def test_a_slow_poll_is_not_taken_over_while_its_instance_lives(
    database_url: str, feed_server: FeedServer  # noqa: F811
) -> None:
    feed_server.set_route("/slow.xml", Response(body=ONE_ITEM, delay=1.5))
    for n in range(6):
        feed_server.serve_feed(f"/quick{n}.xml", ONE_ITEM, etag=f"q{n}")
    lines = [f'database: "{database_url}"', "feeds:",
             f"  - name: slow\n    url: {feed_server.url('/slow.xml')}"]
    lines += [f"  - name: quick{n}\n    url: {feed_server.url(f'/quick{n}.xml')}"
              for n in range(6)]
    config = load_config("\n".join(lines) + "\nrules:\n  - name: budget\n    query: budget\n",
                         source="config.yaml", environ={})
    store = Store.open(database_url)
    store.sync_feeds([FeedSpec(name=f.name, url=f.url) for f in config.feeds], now=utcnow())

    async def two_instances() -> tuple[PollSummary, PollSummary]:
        client = make_client(user_agent=None, max_connections=10)
        pollers = [Poller(store=store, client=client, plan=plan_from_config(config),
                          instance_id=f"desk:{n}") for n in range(2)]
        for poller in pollers:
            poller.lease = timedelta(seconds=0.4)
        try:
            first = asyncio.create_task(pollers[0].poll_due())
            await asyncio.sleep(0.9)  # the slow feed is mid-poll; its first lease long gone
            second = await pollers[1].poll_due()
            return await first, second
        finally:
            await client.aclose()

    try:
        first_summary, second = asyncio.run(two_instances())
    finally:
        store.close()
    polled_first = {o.feed for o in first_summary.outcomes}
    polled_second = {o.feed for o in second.outcomes}
    assert "slow" in polled_first and "slow" not in polled_second
    assert len(feed_server.requests_to("/slow.xml")) == 1
    assert polled_first.isdisjoint(polled_second)
