"""A feed polled at the longest interval a config accepts (36500d), against a real
loopback feed server and store: its next poll is a century on, and its backoff stays a
recorded failure however often it fails, never an OverflowError out of the poll."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from monitor.fetch import make_client
from monitor.pipeline import Poller
from tests.monitor.polling_kit import ONE_ITEM, NoJitter, rig
from tests.support import FeedServer, Response

CENTURY = timedelta(days=36500)
LONGEST = "interval: 36500d\nmax_interval: 36500d"


def test_the_longest_interval_schedules_the_next_poll_a_century_on(
        tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set_route("/f.xml", ONE_ITEM)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}, feed_extra=LONGEST) as r:
            outcome = await r.poll()
            assert [(o.status, o.new_items) for o in outcome.outcomes] == [("new", 1)]
            assert r.feed().next_poll_at == r.clock() + CENTURY

    asyncio.run(scenario())


def test_a_feed_failing_at_the_longest_interval_keeps_backing_off(
        tmp_path: Path, feed_server: FeedServer) -> None:
    # The backoff doubled the interval once per failure before capping it: from the
    # 16th failure on, 36500d * 2**15 was beyond what a timedelta holds.
    feed_server.set_route("/f.xml", Response(status=500, body=b"oops"))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}, feed_extra=LONGEST) as r:
            for polls in range(1, 23):
                outcome = await r.poll(force=True)  # `run --once --force` from cron
                assert [o.error for o in outcome.outcomes] == [
                    "HTTP 500 Internal Server Error"], f"poll {polls}"
                state = r.feed()
                assert state.consecutive_failures == polls
                assert state.next_poll_at == r.clock() + CENTURY
                r.clock.advance(timedelta(minutes=1))

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/f.xml")) == 22


def test_a_clock_stepped_back_an_hour_does_not_hold_polling_for_the_hour(
        tmp_path: Path, feed_server: FeedServer) -> None:
    # The next poll was set from the later clock: T0 + 1m. Stepped back to T0 - 1h,
    # the feed was not due again until the clock had caught up, 61 minutes on.
    feed_server.set_route("/f.xml", ONE_ITEM)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            stepped_to = r.clock() - timedelta(hours=1)
            r.clock.now = stepped_to
            outcome = await r.poll()
            assert [o.status for o in outcome.outcomes] == ["unchanged"]
            assert r.feed().next_poll_at == stepped_to + timedelta(minutes=1)
            # From there on the feed runs to its interval on the new clock.
            r.clock.advance(timedelta(seconds=30))
            assert (await r.poll()).outcomes == []
            r.clock.advance(timedelta(seconds=30))
            assert [o.status for o in (await r.poll()).outcomes] == ["unchanged"]

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/f.xml")) == 3


def test_a_clock_stepped_back_a_few_seconds_polls_nothing_early(
        tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.set_route("/f.xml", ONE_ITEM)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            r.clock.advance(timedelta(seconds=-20))
            assert (await r.poll()).outcomes == []

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/f.xml")) == 1


def test_a_first_pass_after_a_step_back_sees_it_in_the_store(
        tmp_path: Path, feed_server: FeedServer) -> None:
    # `run --once` from cron is a new poller each time: the step shows only in the
    # poll times the store holds.
    feed_server.set_route("/f.xml", ONE_ITEM)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            r.clock.advance(timedelta(hours=-1))
            async with make_client() as client:
                fresh = Poller(store=r.store, client=client, plan=r.poller.plan, clock=r.clock,
                               rng=NoJitter())
                outcome = await fresh.poll_due()
                await fresh.aclose()
            assert [o.status for o in outcome.outcomes] == ["unchanged"]

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/f.xml")) == 2
