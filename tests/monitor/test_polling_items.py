"""Item identity and dates through the whole poll: no repeat alerts, no lost items."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.parsepool import ProcessParser
from tests.monitor.polling_kit import rig, rss
from tests.support import FeedServer

ITEM = {"title": "Budget passes first reading", "link": "http://127.0.0.1/news/budget"}


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param({"guid": "urn:news:4411"}, id="by-guid"),
        pytest.param({}, id="by-link-without-guid"),
    ],
)
def test_item_republished_with_only_a_new_date_does_not_alert_again(
    tmp_path: Path, feed_server: FeedServer, identity: dict[str, str]
) -> None:
    first = rss([{**ITEM, **identity, "pubDate": "Mon, 02 Mar 2026 08:00:00 GMT"}])
    again = rss([{**ITEM, **identity, "pubDate": "Tue, 03 Mar 2026 17:45:00 GMT"}])
    feed_server.serve_feed("/f.xml", first, etag="v1")

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            one = await r.poll()
            assert (one.new_items, one.hits) == (1, 1)
            feed_server.serve_feed("/f.xml", again, etag="v2")
            r.clock.advance(timedelta(minutes=5))
            two = await r.poll()
            assert two.outcomes[0].status == "new"  # changed body, parsed...
            assert (two.new_items, two.hits) == (0, 0)  # ...but nothing new in it
            assert r.parser.calls == 2
            assert len(r.store.deliveries()) == 1
            assert r.feed().items_total == 1

    asyncio.run(scenario())


def test_odd_and_missing_dates_never_fail_an_item(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    dates = {
        "rfc822": "Mon, 02 Mar 2026 08:00:00 GMT",
        "iso-in-pubdate": "2026-03-02T08:00:00Z",
        "german-month": "Mo, 02 Mär 2026 08:00:00 +0100",
        "french-month": "2 mars 2026 08:00",
        "garbage": "sometime last week",
        "empty": "",
        "missing": None,
    }
    items = []
    for name, date in dates.items():
        item = {"title": f"Budget {name}", "guid": f"g-{name}"}
        if date is not None:
            item["pubDate"] = date
        items.append(item)
    feed_server.serve_feed("/f.xml", rss(items))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            summary = await r.poll()
            assert (summary.new_items, summary.hits) == (len(dates), len(dates))
            stored = {i.guid: i for i in r.store.iter_items(since=r.clock() - timedelta(1))}
            assert set(stored) == {f"g-{name}" for name in dates}
            for item in stored.values():
                assert item.published_at is not None  # never empty in an alert
            assert stored["g-rfc822"].published_at == datetime(2026, 3, 2, 8, tzinfo=UTC)
            assert stored["g-iso-in-pubdate"].published_at == datetime(2026, 3, 2, 8, tzinfo=UTC)
            # No date: dated when first seen.
            assert stored["g-missing"].published_at == stored["g-missing"].first_seen_at
            assert stored["g-missing"].first_seen_at == r.clock()

    asyncio.run(scenario())


def test_every_corpus_feed_yields_items_or_a_clear_error_in_one_cycle(
    tmp_path: Path, feed_server: FeedServer, corpus_dir: Path
) -> None:
    files = sorted(p for p in corpus_dir.iterdir() if p.name != "MANIFEST.tsv")
    feeds = {}
    for number, path in enumerate(files):
        feed_server.serve_file(f"/c/{path.name}", path, content_type="application/xml")
        feeds[f"c{number:03d}"] = feed_server.url(f"/c/{path.name}")
    parser = ProcessParser(workers=2)  # also exercises the process pool end to end

    async def scenario() -> None:
        async with rig(tmp_path, feeds, parser=parser) as r:
            summary = await r.poll()
            assert len(summary.outcomes) == len(files)
            errors = {o.feed: o.error for o in summary.errors}
            for feed, error in errors.items():
                assert error is not None and error.startswith("not a usable feed: "), (
                    feed, error)
            with_items = [s for s in r.store.feeds() if s.items_total > 0]
            assert len(with_items) + len(errors) >= len(files) - 2  # two empty captures
            assert len(errors) <= 3, errors

    try:
        asyncio.run(scenario())
    finally:
        parser.close()
