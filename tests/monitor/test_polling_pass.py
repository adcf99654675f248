"""A poll pass keeps claiming feeds that fall due while its last polls still run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col

from monitor.config import load_config
from monitor.fetch import make_client
from monitor.pipeline import Poller
from monitor.plan import plan_from_config
from monitor.store import FeedRow, FeedSpec, Store, utcnow
from tests.monitor.polling_kit import rss
from tests.support import FeedServer
from tests.support.feed_server import Response


def test_a_feed_due_behind_a_slow_poll_is_polled_during_it(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/slow.xml", Response(
        headers={"Content-Type": "application/rss+xml"},
        body=rss([{"title": "slow", "guid": "s-1"}]), delay=4.0))
    feed_server.serve_feed("/soon.xml", rss([{"title": "soon", "guid": "n-1"}]))
    config = load_config(
        f'database: "sqlite:///{tmp_path}/w.db"\n'
        "defaults:\n  timeout: 10s\n  min_interval: 1s\nfeeds:\n"
        f"  - name: slow\n    url: {feed_server.url('/slow.xml')}\n"
        f"  - name: soon\n    url: {feed_server.url('/soon.xml')}\n",
        source="config.yaml", environ={})
    store = Store.open(config.database)
    now = utcnow()
    store.sync_feeds([FeedSpec(name=f.name, url=f.url) for f in config.feeds], now=now)
    # "soon" falls due one second into the pass, while "slow" is still being fetched.
    with store.engine.begin() as connection:
        connection.execute(update(FeedRow).where(col(FeedRow.name) == "soon")
                           .values(next_poll_at=now + timedelta(seconds=1)))

    async def one_pass() -> None:
        client = make_client(max_connections=4)
        poller = Poller(store=store, client=client, plan=plan_from_config(config))
        try:
            summary = await poller.poll_due()
        finally:
            await poller.aclose()
            await client.aclose()
        assert sorted(o.feed for o in summary.outcomes) == ["slow", "soon"]

    try:
        asyncio.run(one_pass())
    finally:
        store.close()
    (soon,) = feed_server.requests_to("/soon.xml")
    (slow,) = feed_server.requests_to("/slow.xml")
    # Polled about a second in, not after the slow feed's four seconds.
    assert soon.received_at - slow.received_at < 3.0, soon.received_at - slow.received_at
