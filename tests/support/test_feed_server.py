"""The feed server behaves like a real, well-behaved feed host."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import FeedServer, Request, Response

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
LAST_MODIFIED = 1_714_566_600  # 2024-05-01 12:30:00 UTC
LAST_MODIFIED_HTTP = "Wed, 01 May 2024 12:30:00 GMT"


def test_serves_routes_and_records_requests(feed_server: FeedServer) -> None:
    feed_server.serve_feed("/news.xml", RSS)

    response = httpx.get(feed_server.url("/news.xml"), headers={"User-Agent": "probe/1"})

    assert response.status_code == 200
    assert response.content == RSS
    assert response.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    (request,) = feed_server.requests
    assert (request.method, request.path) == ("GET", "/news.xml")
    assert request.header("user-agent") == "probe/1"
    assert request.received_at <= time.time()


def test_unknown_path_is_404_and_query_falls_back_to_path(feed_server: FeedServer) -> None:
    feed_server.set_route("/feed", RSS)
    assert httpx.get(feed_server.url("/missing")).status_code == 404
    assert httpx.get(feed_server.url("/feed?page=2")).content == RSS
    assert [r.path for r in feed_server.requests_to("/feed")] == ["/feed?page=2"]


@pytest.mark.parametrize(
    ("request_headers", "expected_status"),
    [
        pytest.param({}, 200, id="unconditional"),
        pytest.param({"If-None-Match": '"v1"'}, 304, id="etag-match"),
        pytest.param({"If-None-Match": 'W/"v1"'}, 304, id="weak-etag-match"),
        pytest.param({"If-None-Match": '"v0", "v1"'}, 304, id="etag-in-list"),
        pytest.param({"If-None-Match": "*"}, 304, id="etag-star"),
        pytest.param({"If-None-Match": '"v0"'}, 200, id="etag-changed"),
        pytest.param({"If-Modified-Since": LAST_MODIFIED_HTTP}, 304, id="not-modified-since"),
        pytest.param(
            {"If-Modified-Since": "Wed, 01 May 2024 12:29:59 GMT"}, 200, id="modified-since"
        ),
        pytest.param({"If-Modified-Since": "yesterday"}, 200, id="invalid-date-ignored"),
        pytest.param(
            # RFC 9110 §13.2.2: If-None-Match wins; a stale ETag means a full answer even
            # though the date alone would say "not modified".
            {"If-None-Match": '"v0"', "If-Modified-Since": LAST_MODIFIED_HTTP},
            200,
            id="etag-takes-precedence",
        ),
    ],
)
def test_conditional_get(
    feed_server: FeedServer, request_headers: dict[str, str], expected_status: int
) -> None:
    feed_server.serve_feed("/news.xml", RSS, etag="v1", last_modified=LAST_MODIFIED)

    response = httpx.get(feed_server.url("/news.xml"), headers=request_headers)

    assert response.status_code == expected_status
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Last-Modified"] == LAST_MODIFIED_HTTP
    assert response.content == (RSS if expected_status == 200 else b"")


def test_conditional_can_be_switched_off(feed_server: FeedServer) -> None:
    feed_server.set_route(
        "/rude.xml", Response(headers={"ETag": '"v1"'}, body=RSS, conditional=False)
    )
    response = httpx.get(feed_server.url("/rude.xml"), headers={"If-None-Match": '"v1"'})
    assert response.status_code == 200


def test_serve_file_sets_validators_from_content(feed_server: FeedServer, tmp_path: Path) -> None:
    path = tmp_path / "feed.atom"
    path.write_bytes(b"<feed/>")
    feed_server.serve_file("/f", path)
    first = httpx.get(feed_server.url("/f"))
    second = httpx.get(feed_server.url("/f"), headers={"If-None-Match": first.headers["ETag"]})
    assert first.headers["Content-Type"] == "application/atom+xml"
    assert (first.status_code, second.status_code) == (200, 304)


def test_routes_change_while_running(feed_server: FeedServer) -> None:
    feed_server.set_route("/f", b"one")
    assert httpx.get(feed_server.url("/f")).content == b"one"
    feed_server.set_route("/f", Response(status=503, body=b"busy"))
    assert httpx.get(feed_server.url("/f")).status_code == 503
    feed_server.remove_route("/f")
    assert httpx.get(feed_server.url("/f")).status_code == 404


def test_callable_route_sees_the_request(feed_server: FeedServer) -> None:
    def echo(request: Request) -> Response:
        return Response(body=(request.header("X-Probe") or "").encode())

    feed_server.set_route("/echo", echo)
    assert httpx.get(feed_server.url("/echo"), headers={"X-Probe": "hi"}).content == b"hi"


def test_failing_callable_answers_500(feed_server: FeedServer) -> None:
    def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    feed_server.set_route("/broken", broken)
    response = httpx.get(feed_server.url("/broken"))
    assert response.status_code == 500
    assert b"boom" in response.content


def test_redirect_and_head(feed_server: FeedServer) -> None:
    feed_server.set_route("/new", RSS)
    feed_server.redirect("/old", "/new")
    response = httpx.get(feed_server.url("/old"), follow_redirects=True)
    assert response.content == RSS
    assert [r.path for r in feed_server.requests] == ["/old", "/new"]
    head = httpx.head(feed_server.url("/new"))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(RSS))


def test_delay_exercises_client_timeouts(feed_server: FeedServer) -> None:
    feed_server.set_route("/slow", Response(body=RSS, delay=1.0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(feed_server.url("/slow"), timeout=0.2)
    assert len(feed_server.requests_to("/slow")) == 1


def test_serves_requests_concurrently(feed_server: FeedServer) -> None:
    feed_server.set_route("/slow", Response(body=RSS, delay=2.0))
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda _: httpx.get(feed_server.url("/slow")).status_code, range(6))
        )
    assert statuses == [200] * 6
    # Served one at a time, each request would be read only after the previous one's
    # 2 s answer: all six arriving within one delay means they were held together.
    arrivals = [r.received_at for r in feed_server.requests_to("/slow")]
    assert max(arrivals) - min(arrivals) < 2.0, "requests were not served concurrently"


def test_wait_for_requests_times_out_with_a_clear_message(feed_server: FeedServer) -> None:
    with pytest.raises(TimeoutError, match="got 0 requests, expected 1"):
        feed_server.wait_for_requests(1, timeout=0.1)


def test_restart_keeps_the_port() -> None:
    server = FeedServer({"/f": Response(body=b"x")}).start()
    url = server.url("/f")
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    server.start()
    try:
        assert server.url("/f") == url
        assert httpx.get(url).content == b"x"
    finally:
        server.stop()
