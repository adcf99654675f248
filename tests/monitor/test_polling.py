"""The poller against a real loopback feed server: what it sends, what it stores.

Each test asserts both sides: the request headers the server saw, and the
feed's state in the store afterwards. Time is a fake clock; the network is real.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.feeds_view import feed_record
from tests.monitor.polling_kit import ONE_ITEM, rig, rss
from tests.support import FeedServer, Request, Response

ETAG = 'W/"5f3a-9c1"'  # weak, quoted, with a dash: must come back byte for byte
LAST_MODIFIED = "Mon, 02 Mar 2026 07:59:01 GMT"


# --------------------------------------------------------------------------- conditional GET


def test_conditional_get_sends_validators_back_exactly_and_304_costs_no_parse(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(body=ONE_ITEM, headers={
        "Content-Type": "application/rss+xml", "ETag": ETAG, "Last-Modified": LAST_MODIFIED}))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            first = await r.poll()
            assert [o.status for o in first.outcomes] == ["new"]
            state = r.feed()
            assert (state.etag, state.last_modified) == (ETAG, LAST_MODIFIED)
            assert r.parser.calls == 1

            r.clock.advance(timedelta(minutes=2))
            second = await r.poll()
            assert [o.status for o in second.outcomes] == ["unchanged"]
            assert r.parser.calls == 1  # the 304 was not parsed
            after = r.feed()
            assert after.last_status == 304
            assert (after.etag, after.last_modified) == (ETAG, LAST_MODIFIED)
            assert after.items_total == 1

    asyncio.run(scenario())
    first, second = feed_server.requests_to("/f.xml")
    assert first.header("If-None-Match") is None and first.header("If-Modified-Since") is None
    assert second.header("If-None-Match") == ETAG
    assert second.header("If-Modified-Since") == LAST_MODIFIED


def test_unchanged_200_body_is_not_parsed_and_validators_are_not_invented(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    # A host that sends no validators and the same body every time.
    feed_server.set_route("/f.xml", Response(body=ONE_ITEM, conditional=False))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            hash_after_first = r.feed().body_hash
            r.clock.advance(timedelta(minutes=2))
            outcome = await r.poll()
            assert [o.status for o in outcome.outcomes] == ["unchanged"]
            assert r.parser.calls == 1
            state = r.feed()
            assert state.body_hash == hash_after_first is not None
            assert state.last_status == 200 and state.etag is None

    asyncio.run(scenario())
    second = feed_server.requests_to("/f.xml")[1]
    assert second.header("If-None-Match") is None and second.header("If-Modified-Since") is None


def test_changed_body_is_parsed_and_new_validators_replace_the_old(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve_feed("/f.xml", ONE_ITEM, etag="v1")

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            feed_server.serve_feed("/f.xml", rss([{"title": "Budget passes", "guid": "a-2"}]),
                                   etag="v2")
            r.clock.advance(timedelta(minutes=2))
            outcome = await r.poll()
            assert outcome.new_items == 1 and r.parser.calls == 2
            assert r.feed().etag == '"v2"'

    asyncio.run(scenario())
    assert feed_server.requests_to("/f.xml")[1].header("If-None-Match") == '"v1"'


# --------------------------------------------------------------------------- server hints


@pytest.mark.parametrize(
    ("headers", "ttl", "bounds", "expected"),
    [
        pytest.param({}, None, "", timedelta(minutes=1), id="no-hint-uses-interval"),
        pytest.param({"Cache-Control": "public, max-age=600"}, None, "",
                     timedelta(minutes=10), id="max-age-lengthens"),
        pytest.param({}, 15, "", timedelta(minutes=15), id="rss-ttl-lengthens"),
        pytest.param({"Cache-Control": "max-age=600"}, 30, "", timedelta(minutes=30),
                     id="longer-of-ttl-and-max-age"),
        pytest.param({"Cache-Control": "max-age=86400"}, None, "max_interval: 20m",
                     timedelta(minutes=20), id="max-age-capped-by-max-interval"),
        pytest.param({"Cache-Control": "max-age=5"}, None, "", timedelta(minutes=1),
                     id="short-max-age-never-below-interval"),
        pytest.param({"Cache-Control": "no-cache, max-age=600"}, None, "",
                     timedelta(minutes=1), id="no-cache-ignores-max-age"),
    ],
)
def test_ttl_and_max_age_set_the_next_poll_within_bounds(
    tmp_path: Path, feed_server: FeedServer, headers: dict[str, str], ttl: int | None,
    bounds: str, expected: timedelta,
) -> None:
    body = rss([{"title": "x", "guid": "g"}], ttl=ttl)
    feed_server.set_route("/f.xml", Response(body=body, headers=headers))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}, defaults=bounds) as r:
            await r.poll()
            assert r.feed().next_poll_at - r.clock() == expected

    asyncio.run(scenario())


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_obeyed_exactly_even_by_a_forced_run(
    tmp_path: Path, feed_server: FeedServer, status: int
) -> None:
    feed_server.set_route("/f.xml", Response(status=status, headers={"Retry-After": "7200"}))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            start = r.clock()
            await r.poll()
            state = r.feed()
            assert state.next_poll_at == start + timedelta(hours=2)
            assert state.retry_after_until == start + timedelta(hours=2)
            assert state.last_status == status and state.consecutive_failures == 1

            r.clock.advance(timedelta(hours=1, minutes=59))
            skipped = await r.poll(force=True)
            assert skipped.outcomes == []
            assert len(feed_server.requests_to("/f.xml")) == 1

            feed_server.set_route("/f.xml", ONE_ITEM)
            r.clock.advance(timedelta(minutes=1))
            polled = await r.poll(force=True)
            assert [o.status for o in polled.outcomes] == ["new"]
            assert r.feed().retry_after_until is None

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/f.xml")) == 2


def test_retry_after_http_date_is_obeyed(tmp_path: Path, feed_server: FeedServer) -> None:
    def answer(request: Request) -> Response:
        wake = format_datetime(datetime.now(UTC) + timedelta(hours=3), usegmt=True)
        return Response(status=503, headers={"Retry-After": wake})

    feed_server.set_route("/f.xml", answer)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            wait = r.feed().retry_after_until - r.clock()  # type: ignore[operator]
            # An HTTP date has one-second resolution and the exchange takes a moment.
            assert timedelta(hours=2, minutes=59, seconds=57) <= wait <= timedelta(hours=3)

    asyncio.run(scenario())


@pytest.mark.parametrize("wait", ["99999999999999", "9" * 5000, "000000000000007200"])
def test_retry_after_beyond_any_date_is_capped_and_recorded(
    tmp_path: Path, feed_server: FeedServer, wait: str
) -> None:
    # 10^14 seconds overflowed the date arithmetic, 5,000 digits int() itself: the poll
    # failed as an internal error, unrecorded, and the feed stayed due every pass.
    feed_server.set_route("/f.xml", Response(status=503, headers={"Retry-After": wait}))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            [outcome] = (await r.poll()).outcomes
            assert outcome.error == "HTTP 503 Service Unavailable"
            state = r.feed()
            assert state.last_status == 503 and state.consecutive_failures == 1
            expected = timedelta(hours=2) if wait.endswith("7200") else timedelta(seconds=2**31)
            assert state.retry_after_until == r.clock() + expected

    asyncio.run(scenario())


def test_a_max_age_of_thousands_of_digits_does_not_stop_the_feed(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(body=ONE_ITEM, headers={
        "Content-Type": "application/rss+xml", "Cache-Control": "max-age=" + "9" * 5000}))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            assert [o.status for o in (await r.poll()).outcomes] == ["new"]
            assert r.feed().items_total == 1

    asyncio.run(scenario())


def test_retry_after_on_other_statuses_is_not_a_wait(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(status=500, headers={"Retry-After": "86400"}))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            await r.poll()
            state = r.feed()
            assert state.retry_after_until is None
            assert state.next_poll_at - r.clock() == timedelta(minutes=1)

    asyncio.run(scenario())


# --------------------------------------------------------------------------- backoff


def test_failures_back_off_exponentially_to_the_cap_and_keep_the_last_error(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(status=500, body=b"oops"))
    seen: list[tuple[int, timedelta]] = []

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")}) as r:
            for _ in range(12):
                r.clock.now = r.feed().next_poll_at
                await r.poll()
                state = r.feed()
                seen.append((state.consecutive_failures, state.next_poll_at - r.clock()))
            state = r.feed()
            assert state.last_error == "HTTP 500 Internal Server Error"
            assert state.status == "failing" and state.last_status == 500
            assert feed_record(state)["consecutive_failures"] == 12

            feed_server.set_route("/f.xml", ONE_ITEM)
            r.clock.now = state.next_poll_at
            await r.poll()
            healed = r.feed()
            assert (healed.consecutive_failures, healed.last_error, healed.status) == (
                0, None, "ok")
            assert healed.failing_since is None

    asyncio.run(scenario())
    minute = timedelta(minutes=1)
    assert seen[:4] == [(1, minute), (2, 2 * minute), (3, 4 * minute), (4, 8 * minute)]
    assert [d for _, d in seen[-3:]] == [timedelta(hours=6)] * 3  # the cap
    # Every failed poll really reached the server, one per scheduled time.
    requests = feed_server.requests_to("/f.xml")
    assert len(requests) == 13
    assert all((r.header("User-Agent") or "").startswith("wirewatch/") for r in requests)


def test_backoff_has_jitter_so_failing_feeds_drift_apart() -> None:
    import random

    from monitor.cadence import Cadence, next_poll_after_failure
    from tests.monitor.polling_kit import T0

    cadence = Cadence(interval=timedelta(minutes=5), min_interval=timedelta(minutes=1),
                      max_interval=timedelta(days=1))
    times = {next_poll_after_failure(T0, cadence, failures=3, rng=random.Random(seed))
             for seed in range(20)}
    assert len(times) > 10
    assert all(T0 + timedelta(minutes=20) <= t <= T0 + timedelta(minutes=22) for t in times)


# --------------------------------------------------------------------------- redirects


def test_permanent_redirect_seen_three_times_becomes_the_effective_url(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.redirect("/old.xml", "/new.xml", status=301)
    feed_server.serve_feed("/new.xml", ONE_ITEM, etag="n1")
    streaks: list[tuple[str | None, int, str | None]] = []

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/old.xml")}) as r:
            for _ in range(3):
                await r.poll(force=True)
                s = r.feed()
                streaks.append((s.redirect_target, s.redirect_streak, s.effective_url))
            state = r.feed()
            record = feed_record(state)
            assert record["url"] == feed_server.url("/old.xml")
            assert record["effective_url"] == feed_server.url("/new.xml")
            await r.poll(force=True)

    asyncio.run(scenario())
    new = feed_server.url("/new.xml")
    assert streaks == [(new, 1, None), (new, 2, None), (None, 0, new)]
    assert len(feed_server.requests_to("/old.xml")) == 3
    assert len(feed_server.requests_to("/new.xml")) == 4  # the 4th poll went straight there
    # Validators learnt after the redirect were sent on the next polls.
    assert [r.header("If-None-Match") for r in feed_server.requests_to("/new.xml")] == [
        None, '"n1"', '"n1"', '"n1"']


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([302, 302, 302], id="temporary-redirects-never-adopted"),
        pytest.param([301, 301, None, 301], id="streak-broken-by-a-direct-answer"),
        pytest.param([308, 307, 308], id="streak-broken-by-a-temporary-redirect"),
    ],
)
def test_redirects_that_must_not_be_adopted(
    tmp_path: Path, feed_server: FeedServer, script: list[int | None]
) -> None:
    feed_server.serve_feed("/new.xml", ONE_ITEM)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/old.xml")}) as r:
            for status in script:
                if status is None:
                    feed_server.serve_feed("/old.xml", ONE_ITEM)
                else:
                    feed_server.redirect("/old.xml", "/new.xml", status=status)
                await r.poll(force=True)
            assert r.feed().effective_url is None

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/old.xml")) == len(script)


def test_410_gone_disables_the_feed_with_reason_and_ops_alert(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(status=410, body=b"gone"))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")},
                       extra="ops_notify: ops") as r:
            outcome = await r.poll()
            assert outcome.errors[0].feed == "desk"
            state = r.feed()
            assert state.enabled is False and state.gone is True
            assert state.disabled_reason is not None and "410" in state.disabled_reason
            record = feed_record(state)
            assert record["status"] == "disabled" and "gone" in record["last_error"]
            notices = r.store.notices()
            assert [(n["notifier"], n["severity"]) for n in notices] == [("ops", "high")]
            assert "desk" in notices[0]["title"] and "410" in notices[0]["body"]

            # Neither a forced run nor a config sync with the same URL polls it again.
            from monitor.store import FeedSpec

            r.store.sync_feeds([FeedSpec(name="desk", url=feed_server.url("/f.xml"))],
                               now=r.clock())
            assert (await r.poll(force=True)).outcomes == []
            assert r.feed().enabled is False
            # A new URL in the config brings it back.
            feed_server.serve_feed("/moved.xml", ONE_ITEM)
            r.store.sync_feeds([FeedSpec(name="desk", url=feed_server.url("/moved.xml"))],
                               now=r.clock())
            assert r.feed().enabled is True
            assert [o.status for o in (await r.poll()).outcomes] == ["new"]

    asyncio.run(scenario())
    assert len(feed_server.requests_to("/f.xml")) == 1


# --------------------------------------------------------------------------- ops alerts


def test_failing_longer_than_alert_after_alerts_once_then_recovers_once(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(status=502))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")},
                       extra="ops_notify: ops", defaults="alert_after: 30m") as r:
            start = r.clock()
            for minutes in (0, 10, 29):
                r.clock.now = start + timedelta(minutes=minutes)
                await r.poll(force=True)
            assert r.store.notices() == []
            for minutes in (30, 45, 120):
                r.clock.now = start + timedelta(minutes=minutes)
                await r.poll(force=True)
            failing = r.store.notices()
            assert len(failing) == 1
            assert failing[0]["key"] == f"feed-failing:desk:{start.isoformat()}"
            assert "HTTP 502" in failing[0]["body"] and failing[0]["notifier"] == "ops"
            assert r.feed().failure_alerted_at == start + timedelta(minutes=30)

            feed_server.set_route("/f.xml", ONE_ITEM)
            r.clock.advance(timedelta(minutes=5))
            await r.poll(force=True)
            await r.poll(force=True)
            keys = [n["key"] for n in r.store.notices()]
            assert keys == [f"feed-failing:desk:{start.isoformat()}",
                            f"feed-recovered:desk:{start.isoformat()}"]

            # A second episode gets its own alert.
            feed_server.set_route("/f.xml", Response(status=502))
            second = r.clock()
            for minutes in (1, 40):
                r.clock.now = second + timedelta(minutes=minutes)
                await r.poll(force=True)
            assert len(r.store.notices()) == 3
            assert r.store.notices()[-1]["key"] == (
                f"feed-failing:desk:{(second + timedelta(minutes=1)).isoformat()}")

    asyncio.run(scenario())


def test_short_failure_gets_neither_alert_nor_recovery_notice(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.set_route("/f.xml", Response(status=500))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")},
                       extra="ops_notify: ops") as r:
            await r.poll(force=True)
            feed_server.set_route("/f.xml", ONE_ITEM)
            r.clock.advance(timedelta(minutes=5))
            await r.poll(force=True)
            assert r.store.notices() == []

    asyncio.run(scenario())


def test_without_ops_notify_alerts_are_logged_not_queued(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed_server.set_route("/f.xml", Response(status=500))

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")},
                       defaults="alert_after: 1m") as r:
            await r.poll(force=True)
            r.clock.advance(timedelta(minutes=1))
            await r.poll(force=True)
            assert r.store.notices() == []

    with caplog.at_level("WARNING", logger="wirewatch.pipeline"):
        asyncio.run(scenario())
    assert any("ops_alert" in m and "failing" in m for m in caplog.messages)


def test_expect_every_raises_one_silence_alert_until_something_new_arrives(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve_feed("/f.xml", ONE_ITEM, etag="v1")

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")},
                       extra="ops_notify: ops", feed_extra="expect_every: 12h") as r:
            start = r.clock()
            await r.poll()  # one new item now
            for hours in (6, 11):
                r.clock.now = start + timedelta(hours=hours)
                await r.poll(force=True)
            assert r.store.notices() == []
            for hours in (12, 13, 30):
                r.clock.now = start + timedelta(hours=hours)
                await r.poll(force=True)
            notices = r.store.notices()
            assert [n["key"] for n in notices] == [f"feed-silent:desk:{start.isoformat()}"]
            assert "12h" in notices[0]["body"]

            feed_server.serve_feed("/f.xml", rss([{"title": "News", "guid": "n-2"}]),
                                   etag="v2")
            await r.poll(force=True)
            assert r.feed().silence_alerted_at is None
            r.clock.advance(timedelta(hours=12))
            await r.poll(force=True)
            assert len(r.store.notices()) == 2

    asyncio.run(scenario())


# --------------------------------------------------------------------------- politeness


class ConcurrencyProbe:
    """A route that holds each request a moment and records the peak in flight."""

    def __init__(self, body: bytes, hold: float = 0.15) -> None:
        self.body, self.hold = body, hold
        self.in_flight = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        time.sleep(self.hold)
        with self._lock:
            self.in_flight -= 1
        return Response(body=self.body)


@pytest.mark.parametrize(
    ("per_host", "total", "expect_peak_a", "expect_peak_all"),
    [
        pytest.param(None, None, 2, 4, id="defaults-two-per-host"),
        pytest.param(3, None, 3, 6, id="per-host-from-config"),
        pytest.param(3, 4, None, 4, id="global-limit-caps-all-hosts"),
    ],
)
def test_per_host_and_global_concurrency_limits(
    tmp_path: Path, per_host: int | None, total: int | None,
    expect_peak_a: int | None, expect_peak_all: int,
) -> None:
    probe_a, probe_b = ConcurrencyProbe(ONE_ITEM), ConcurrencyProbe(ONE_ITEM)
    overall = {"in": 0, "peak": 0}
    lock = threading.Lock()

    def counted(probe: ConcurrencyProbe) -> object:
        def route(request: Request) -> Response:
            with lock:
                overall["in"] += 1
                overall["peak"] = max(overall["peak"], overall["in"])
            try:
                return probe(request)
            finally:
                with lock:
                    overall["in"] -= 1
        return route

    limits = []
    if per_host or total:
        limits.append("concurrency:")
        if per_host:
            limits.append(f"  per_host: {per_host}")
        if total:
            limits.append(f"  global: {total}")
    with FeedServer() as a, FeedServer() as b:
        feeds = {}
        for index in range(8):
            a.set_route(f"/a{index}.xml", counted(probe_a))  # type: ignore[arg-type]
            b.set_route(f"/b{index}.xml", counted(probe_b))  # type: ignore[arg-type]
            feeds[f"a{index}"] = a.url(f"/a{index}.xml")
            feeds[f"b{index}"] = b.url(f"/b{index}.xml")

        async def scenario() -> None:
            async with rig(tmp_path, feeds, extra="\n".join(limits)) as r:
                summary = await r.poll()
                assert len(summary.outcomes) == 16 and not summary.errors

        asyncio.run(scenario())
    if expect_peak_a is not None:
        assert probe_a.peak == expect_peak_a and probe_b.peak == expect_peak_a
    assert overall["peak"] == expect_peak_all


def test_user_agent_comes_from_config(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.serve_feed("/f.xml", ONE_ITEM)

    async def scenario() -> None:
        async with rig(tmp_path, {"desk": feed_server.url("/f.xml")},
                       extra='user_agent: "NewsDesk-Monitor/2.0 (+mailto:desk@paper.test)"') as r:
            await r.poll()

    asyncio.run(scenario())
    assert feed_server.requests_to("/f.xml")[0].header("User-Agent") == (
        "NewsDesk-Monitor/2.0 (+mailto:desk@paper.test)")
