"""Hostile servers: each case ends as an error (or sane items) on that feed alone.

Every test polls one hostile feed next to a good one in the same cycle, on real
sockets (tests/support/hostile_server.py), and asserts what the store recorded
for both. Each would fail if its handling were removed: without the size cap
the 1 GiB bodies would time out instead, without the whole-fetch timeout the
drip would hang until pytest-timeout, and so on.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from monitor.fetch import MAX_COOKIES, BoundedCookieJar, fetch_feed, make_client
from monitor.store import FeedState
from tests.monitor.polling_kit import rig
from tests.ops.daemon import free_port
from tests.support import FeedServer, Request, Response
from tests.support.hostile_server import (
    GOOD_FEED,
    UNUSABLE_LOCATIONS,
    HostileServer,
    decompressed_size,
    gzip_bomb,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def poll_with_good_neighbour(
    tmp_path: Path, hostile: HostileServer, url: str, *, timeout: str = "5s"
) -> tuple[FeedState, FeedState]:
    """One cycle over the hostile feed and a good one; both feeds' stored state."""
    result: list[FeedState] = []

    async def scenario() -> None:
        feeds = {"hostile": url, "good": hostile.url("/good")}
        async with rig(tmp_path, feeds, defaults=f"timeout: {timeout}") as r:
            summary = await r.poll()
            assert len(summary.outcomes) == 2
            result.extend([r.feed("hostile"), r.feed("good")])

    asyncio.run(scenario())
    hostile_state, good_state = result
    assert good_state.items_total == 1 and good_state.last_error is None, good_state
    return hostile_state, good_state


def assert_failed(state: FeedState, *fragments: str) -> None:
    assert state.consecutive_failures == 1 and state.status == "failing", state
    assert state.last_error is not None
    for fragment in fragments:
        assert fragment in state.last_error, state.last_error
    assert state.items_total == 0


def test_billion_laughs_is_refused(tmp_path: Path, hostile: HostileServer) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/billion-laughs"))
    assert_failed(state, "not a usable feed", "entity")


def test_external_entity_xxe_is_refused(tmp_path: Path, hostile: HostileServer) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/xxe"))
    assert_failed(state, "not a usable feed", "'secret'")


def test_gzip_bomb_stops_at_max_bytes_after_decompression(
    tmp_path: Path, hostile: HostileServer
) -> None:
    assert decompressed_size(gzip_bomb()) > 6 * 10 * 2**20 > 100 * len(gzip_bomb())
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/gzip-bomb"))
    assert_failed(state, "exceeds max_bytes (10485760) after decompression")


def test_one_gib_body_announced_in_content_length_is_refused_early(
    tmp_path: Path, hostile: HostileServer
) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/huge-declared"))
    assert_failed(state, "body of 1073741824 bytes exceeds max_bytes")


def test_one_gib_body_without_length_is_streamed_and_aborted_at_the_cap(
    tmp_path: Path, hostile: HostileServer
) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/huge-undeclared"))
    assert_failed(state, "exceeds max_bytes (10485760)")


def test_never_ending_chunked_body_is_aborted_at_the_cap(
    tmp_path: Path, hostile: HostileServer
) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/endless-chunked"))
    assert_failed(state, "exceeds max_bytes")


def test_one_byte_per_second_drip_is_cut_by_the_whole_fetch_timeout(
    tmp_path: Path, hostile: HostileServer
) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/drip"), timeout="2s")
    assert_failed(state, "timed out after 2s")


def test_redirect_loop_is_an_error(tmp_path: Path, hostile: HostileServer) -> None:
    def loop_requests() -> int:
        return len(hostile.requests_to("/redirect-loop")) + len(
            hostile.requests_to("/redirect-loop-b"))

    before = loop_requests()
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/redirect-loop"))
    assert_failed(state, "more than 5 redirects")
    # The first request and five redirects followed, then given up.
    assert loop_requests() - before == 6


@pytest.mark.parametrize("path", sorted(UNUSABLE_LOCATIONS))
def test_redirect_to_an_unusable_url_is_an_error_on_the_feed(
    tmp_path: Path, hostile: HostileServer, path: str
) -> None:
    # httpx raised these past FetchError: the poll failed unrecorded, so the feed
    # stayed due and was fetched (and failed) again every pass.
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url(path))
    assert_failed(state, "unusable URL")


def test_304_to_a_request_without_validators_is_an_error(
    tmp_path: Path, hostile: HostileServer
) -> None:
    # Taken as "unchanged", the feed looked healthy for good and never brought an item.
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/not-modified-unasked"))
    assert_failed(state, "HTTP 304", "without validators")
    (request, *_) = hostile.requests_to("/not-modified-unasked")
    assert request.header("If-None-Match") is None and request.header("If-Modified-Since") is None


def test_a_feed_behind_a_cookie_check_is_read(feed_server: FeedServer) -> None:
    # The site sets a cookie on a redirect and sends the feed only to who brings it
    # back; without a jar every answer would be another redirect.
    def feed(request: Request) -> Response:
        if request.header("Cookie") == "check=ok":
            return Response(headers={"Content-Type": "application/rss+xml"}, body=GOOD_FEED)
        return Response(status=302, headers={"Location": "/check"})

    feed_server.set_route("/feed", feed)
    feed_server.set_route("/check", Response(
        status=302, headers={"Location": "/feed", "Set-Cookie": "check=ok; Path=/"}))

    async def poll() -> int:
        async with make_client() as client:
            result = await fetch_feed(client, feed_server.url("/feed"), timeout=5,
                                      max_bytes=2**20)
            return result.status

    assert asyncio.run(poll()) == 200
    assert [r.header("Cookie") for r in feed_server.requests_to("/feed")] == [None, "check=ok"]


def test_a_client_holds_at_most_max_cookies_then_starts_over() -> None:
    # One client serves every poll for the daemon's life. With an unbounded jar, a
    # server setting a new cookie name on each answer made the jar, and the Cookie
    # header on every later poll, grow without end (until the server refused it).
    jar = BoundedCookieJar()
    cookies = httpx.Cookies(jar)
    request = httpx.Request("GET", "http://127.0.0.1/feed")
    for n in range(3 * MAX_COOKIES):
        answer = httpx.Response(200, headers={"Set-Cookie": f"visit{n}=x; Path=/"},
                                request=request)
        cookies.extract_cookies(answer)
        assert len(jar) <= MAX_COOKIES
    assert {cookie.name for cookie in jar} == {
        f"visit{n}" for n in range(2 * MAX_COOKIES, 3 * MAX_COOKIES)
    }


def test_invalid_utf8_keeps_the_item_and_its_readable_text(
    tmp_path: Path, hostile: HostileServer
) -> None:
    # Not an error: the undecodable bytes are read as Windows-1252 (feedparser's
    # fallback), the item is kept and its ASCII text survives intact.
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/invalid-utf8"))
    assert state.consecutive_failures == 0 and state.items_total == 1
    # ...but the broken feed is recorded on it, for `wirewatch feeds` to show.
    assert state.last_error is not None
    assert state.last_error.startswith("warning: the feed's bytes do not match its declared")


def test_wrongly_declared_encoding_still_stores_the_item(
    tmp_path: Path, hostile: HostileServer
) -> None:
    # Declared ISO-8859-1 but written in Windows-1251: every byte is valid in the
    # declared charset, so the text is what the server said it was (mojibake), and
    # the item is stored rather than the poll failing.
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/wrong-encoding"))
    assert state.consecutive_failures == 0 and state.items_total == 1


def test_html_page_instead_of_a_feed_is_named_as_such(
    tmp_path: Path, hostile: HostileServer
) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/html"))
    assert_failed(state, "not a usable feed", "HTML page")


def test_empty_200_is_an_error(tmp_path: Path, hostile: HostileServer) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/empty"))
    assert_failed(state, "empty response body")


def test_connection_reset_is_an_error(tmp_path: Path, hostile: HostileServer) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.url("/reset"))
    assert_failed(state)
    assert state.last_error is not None and (
        "reset" in state.last_error or "broke" in state.last_error)


def test_refused_connection_names_the_address_and_the_cause(
        tmp_path: Path, hostile: HostileServer) -> None:
    port = free_port()  # nothing listens there
    state, _ = poll_with_good_neighbour(tmp_path, hostile, f"http://127.0.0.1:{port}/feed.xml")
    assert_failed(state)
    assert state.last_error == f"cannot connect to 127.0.0.1:{port}: connection refused"


_RESOLVE = """\
import asyncio, httpx
from monitor.fetch import FetchError, fetch_feed
async def main() -> None:
    async with httpx.AsyncClient() as client:
        try:
            await fetch_feed(client, "http://feeds.wirewatch.invalid/world.xml",
                             timeout=10, max_bytes=1000)
        except FetchError as exc:
            print(exc)
asyncio.run(main())
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare")
def test_a_host_that_does_not_resolve_is_named() -> None:
    # In a network namespace of its own (no network at all), so that the lookup
    # fails here and never leaves the machine.
    result = subprocess.run(["unshare", "-n", sys.executable, "-c", _RESOLVE], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "unshare" in result.stderr:
        pytest.skip(f"no network namespaces here: {result.stderr.strip()}")
    assert result.stdout.startswith(
        "cannot resolve the host feeds.wirewatch.invalid: "), result.stdout + result.stderr


def test_untrusted_tls_certificate_is_an_error(tmp_path: Path, hostile: HostileServer) -> None:
    state, _ = poll_with_good_neighbour(tmp_path, hostile, hostile.tls_url("/good"))
    assert_failed(state, "TLS error", "CERTIFICATE_VERIFY_FAILED")


def test_stored_text_of_invalid_utf8_item(tmp_path: Path, hostile: HostileServer) -> None:
    """The item from the invalid-UTF-8 feed, as stored."""

    async def scenario() -> list[str]:
        async with rig(tmp_path, {"bad": hostile.url("/invalid-utf8")}) as r:
            await r.poll()
            return [item.title for item in r.store.iter_items(since=r.clock() - timedelta(days=1))]

    titles = asyncio.run(scenario())
    assert len(titles) == 1
    assert titles[0].startswith("Budget ") and titles[0].endswith(" broken bytes")


# --------------------------------------------------------------------------- all at once

RUNNER = textwrap.dedent("""
    import io, json, resource, sys
    from monitor.cli import main
    err = io.StringIO()
    code = main(["--config", sys.argv[1], "--log-level", "ERROR", "run", "--once",
                 "--deliver-timeout", "1"], stdout=io.StringIO(), stderr=err, environ={})
    # VmHWM is this process image's own peak: ru_maxrss would also count the
    # parent's peak, which Linux carries across fork and exec.
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"code": code, "stderr": err.getvalue(),
                      "rss_kib": hwm,
                      "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
""")


def test_every_hostile_case_in_one_cycle_stays_under_300_mb(
    tmp_path: Path, hostile: HostileServer
) -> None:
    cases = ["/billion-laughs", "/xxe", "/gzip-bomb", "/huge-declared", "/huge-undeclared",
             "/endless-chunked", "/drip", "/redirect-loop", "/invalid-utf8", "/wrong-encoding",
             "/html", "/empty", "/reset"]
    feeds = [(path.strip("/"), hostile.url(path)) for path in cases]
    feeds += [("tls", hostile.tls_url("/good")), ("good", hostile.url("/good"))]
    config = tmp_path / "config.yaml"
    config.write_text(
        f'database: "sqlite:///{tmp_path / "w.db"}"\n'
        "defaults:\n  timeout: 3s\nfeeds:\n"
        + "".join(f"  - name: {name}\n    url: {url}\n" for name, url in feeds)
        + "rules:\n  - name: budget\n    query: budget\n"
    )
    done = subprocess.run([sys.executable, "-c", RUNNER, str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    summary = report["stderr"]
    assert f"polled {len(feeds)} feeds" in summary, summary
    # 12 cases fail; invalid UTF-8, wrong encoding and the good feed bring items.
    assert "12 feed errors" in summary, summary
    for name in ("billion-laughs", "gzip-bomb", "drip", "reset", "tls", "empty"):
        assert f"feed '{name}':" in summary
    assert report["rss_kib"] < 300 * 1024, report
