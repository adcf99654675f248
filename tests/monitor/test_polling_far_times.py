"""A feed polled at the longest interval a config accepts (36500d), against a real
loopback feed server and store: its next poll is a century on, and its backoff stays a
recorded failure however often it fails, never an OverflowError out of the poll."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from tests.monitor.polling_kit import ONE_ITEM, rig
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
