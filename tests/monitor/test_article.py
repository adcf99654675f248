"""Article text: extraction from real-looking pages, fetching over loopback, every failure.

Pages come from tests/data/articles (see its README). Fetches go to the loopback
FeedServer only; the guard's refusals are tested with the switch off, and each
refused fetch is shown not to have reached the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.article import (
    MIN_TEXT_CHARS,
    ArticleError,
    ArticleFetcher,
    ArticleText,
    extract_text,
    make_article_client,
)
from monitor.extractpool import ExtractionPool
from monitor.hosts import HostLimits
from monitor.netguard import AddressPolicy, IPAddress, Resolver
from tests.ops.daemon import cpu_seconds, descendants, parent_of
from tests.support import FeedServer, Request, Response

ARTICLES = Path(__file__).resolve().parents[1] / "data" / "articles"
HTML = {"Content-Type": "text/html; charset=utf-8"}


def page(name: str) -> bytes:
    return (ARTICLES / name).read_bytes()


# ----------------------------------------------------------------------------- extraction


def test_extraction_keeps_the_story_and_drops_the_page_around_it() -> None:
    text = extract_text(page("armenia-csto.html"), url="https://news.example.org/a")
    assert text.count("CSTO") >= 5
    assert "We will leave" in text and "Pashinyan" in text
    for not_story in ("motorcycle", "agricultural", "Read also", "Quadrillion", "Newsletter",
                      "Peru ousts", "Privacy policy"):
        assert not_story not in text, not_story


def test_extraction_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("extraction tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    text = extract_text(page("armenia-csto.html"), url="https://news.example.org/a")
    assert "CSTO" in text and attempts == []


@pytest.mark.parametrize(
    ("case", "body", "reason"),
    [
        ("paywall marked by structured data", page("paywalled.html"), "paywall"),
        ("consent wall", page("consent-wall.html"), "too little text extracted"),
        ("empty page", b"<html><body></body></html>", "too little text extracted (0 characters"),
        ("not markup at all", b"\x89PNG\r\n\x1a\n" + bytes(300), "too little text extracted"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "",
)
def test_extraction_failures(case: str, body: bytes, reason: str) -> None:
    with pytest.raises(ArticleError) as caught:
        extract_text(body, url="https://news.example.org/a")
    assert reason in str(caught.value), case


def test_a_page_just_long_enough_passes() -> None:
    words = "Yerevan told the CSTO it would withdraw from the alliance. " * 6
    body = f"<html><body><article><p>{words}</p></article></body></html>".encode()
    assert len(extract_text(body)) >= MIN_TEXT_CHARS


# ----------------------------------------------------------------------------- fetching


@pytest.fixture
def articles() -> Iterator[FeedServer]:
    with FeedServer() as server:
        server.set_route("/a", Response(headers=HTML, body=page("armenia-csto.html")))
        yield server


def fetch(url: str, *, allow_private: bool = True, deadline: float = 5.0, timeout: float = 5.0,
          max_bytes: int = 2**20, policy: object = None, resolver: Resolver | None = None,
          limits: HostLimits | None = None) -> ArticleText:
    async def run() -> ArticleText:
        client = make_article_client(allow_private=allow_private, policy=policy,  # type: ignore[arg-type]
                                     resolver=resolver, user_agent="wirewatch/test")
        extractor = ExtractionPool()
        try:
            fetcher = ArticleFetcher(client=client, extractor=extractor, limits=limits)
            return await fetcher.text(url, deadline=deadline, timeout=timeout,
                                      max_bytes=max_bytes)
        finally:
            await client.aclose()
            extractor.close()

    return asyncio.run(run())


def test_fetch_extracts_and_sends_our_user_agent(articles: FeedServer) -> None:
    result = fetch(articles.url("/a"))
    assert result.failure is None and result.text is not None and "CSTO" in result.text
    assert articles.requests_to("/a")[0].header("User-Agent") == "wirewatch/test"


def test_fetch_follows_redirects_and_reports_the_final_url(articles: FeedServer) -> None:
    articles.redirect("/short", "/moved", status=302)
    articles.redirect("/moved", "/a", status=301)
    result = fetch(articles.url("/short"))
    assert result.failure is None and result.url == articles.url("/a")


FAILURES = [
    ("not found", "/missing", None, "HTTP 404"),
    ("server error", "/boom", Response(status=500), "HTTP 500"),
    ("forbidden", "/403", Response(status=403), "HTTP 403"),
    ("pdf", "/doc.pdf", Response(headers={"Content-Type": "application/pdf"}, body=b"%PDF-1.7"),
     "not an HTML page (application/pdf)"),
    ("json", "/api", Response(headers={"Content-Type": "application/json"}, body=b"{}"),
     "not an HTML page (application/json)"),
    ("no type, no markup", "/blob", Response(body=b"\x00\x01 binary"),
     "not an HTML page (no Content-Type"),
    ("paywall", "/paid", Response(headers=HTML, body=page("paywalled.html")), "paywall"),
    ("consent wall", "/consent", Response(headers=HTML, body=page("consent-wall.html")),
     "too little text extracted"),
    ("too large", "/huge", Response(headers=HTML, body=b"<html>" + b"x" * 5000), "max_bytes"),
    ("redirect without Location", "/nowhere", Response(status=302), "without a Location"),
    # Locations httpx, urllib or the socket layer raise on outside httpx.HTTPError:
    # text() raised instead of returning a failure, the item's claim ran out and a
    # later pass fetched the page again, every pass, never matching the item.
    *((f"redirect to {location!r}", f"/to-{n}",
       Response(status=302, headers={"Location": location}), "unusable URL")
      for n, location in enumerate(["javascript:alert(1)", "http://[bad", "http://xn--/a",
                                    "http://127.0.0.1:99999/a"])),
]


@pytest.mark.parametrize(("case", "path", "response", "reason"), FAILURES,
                         ids=[f[0] for f in FAILURES])
def test_fetch_failures_give_a_reason(articles: FeedServer, case: str, path: str,
                                      response: Response | None, reason: str) -> None:
    if response is not None:
        articles.set_route(path, response)
    result = fetch(articles.url(path), max_bytes=4096)
    assert result.text is None
    assert result.failure is not None and reason in result.failure, (case, result.failure)


def test_an_unusable_link_is_a_failure_not_an_exception() -> None:
    result = fetch("http://[bad/story")
    assert result.text is None and result.failure is not None
    assert "unusable URL" in result.failure


def test_an_article_behind_a_cookie_check_is_read(articles: FeedServer) -> None:
    # Some sites set a cookie on a redirect and send the page only to who brings it back.
    def article(request: Request) -> Response:
        if request.header("Cookie") == "check=ok":
            return Response(headers=HTML, body=page("armenia-csto.html"))
        return Response(status=302, headers={"Location": "/check"})

    articles.set_route("/c", article)
    articles.set_route("/check", Response(
        status=302, headers={"Location": "/c", "Set-Cookie": "check=ok; Path=/"}))
    result = fetch(articles.url("/c"))
    assert result.failure is None and result.text
    assert [r.header("Cookie") for r in articles.requests_to("/c")] == [None, "check=ok"]


def test_redirect_loop_stops_after_five_hops(articles: FeedServer) -> None:
    articles.redirect("/loop", "/loop", status=302)
    result = fetch(articles.url("/loop"))
    assert result.failure == "more than 5 redirects"
    assert len(articles.requests_to("/loop")) == 6


def test_slow_server_times_out_with_the_reason(articles: FeedServer) -> None:
    articles.set_route("/slow", Response(headers=HTML, body=page("armenia-csto.html"), delay=2))
    result = fetch(articles.url("/slow"), timeout=0.3)
    assert result.failure == "timed out after 0.3s"


def test_the_deadline_bounds_the_wait_for_a_slot_too(articles: FeedServer) -> None:
    articles.set_route("/slow", Response(headers=HTML, body=page("armenia-csto.html"), delay=2))
    result = fetch(articles.url("/slow"), deadline=0.3, timeout=10)
    assert result.failure == "timed out after 0.3s (full_text_timeout)"


class _InFlight:
    """A route that records how many requests it was serving at once."""

    # Requests allowed together must arrive while the first is held: half a second
    # leaves room for a busy machine, where 0.15 s was within one scheduling delay.
    def __init__(self, body: bytes, *, hold: float = 0.5) -> None:
        self.body, self.hold = body, hold
        self.now = self.most = 0
        self._lock = threading.Lock()  # the server answers on a thread per request

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.hold)
        with self._lock:
            self.now -= 1
        return Response(headers=HTML, body=self.body)


def run_fetches(urls: list[str], *, limits: HostLimits, concurrency: int) -> list[ArticleText]:
    async def run() -> list[ArticleText]:
        client = make_article_client(allow_private=True, max_connections=10)
        extractor = ExtractionPool(size=concurrency)
        fetcher = ArticleFetcher(client=client, extractor=extractor, limits=limits,
                                 concurrency=concurrency)
        try:
            return await asyncio.gather(*(
                fetcher.text(u, deadline=10, timeout=10, max_bytes=2**20) for u in urls))
        finally:
            await client.aclose()
            extractor.close()

    return asyncio.run(run())


def test_article_fetches_share_the_per_host_limit() -> None:
    """per_host=1 (the limit feed polls use) holds article fetches to one host one at a time."""
    route = _InFlight(page("armenia-csto.html"))
    with FeedServer() as server:
        server.set_route("/a", route)
        results = run_fetches([server.url("/a")] * 4, limits=HostLimits(per_host=1, total=10),
                              concurrency=4)
    assert all(r.failure is None for r in results)
    assert len(server.requests) == 4 and route.most == 1


def test_article_fetches_wait_for_a_host_busy_with_a_feed_poll() -> None:
    route = _InFlight(page("armenia-csto.html"))
    with FeedServer() as server:
        server.set_route("/a", route)
        limits = HostLimits(per_host=1, total=10)

        async def run() -> list[str]:
            order: list[str] = []
            async with limits.slot(server.url("/feed.xml")):  # a feed poll holds the host
                task = asyncio.ensure_future(run_article())
                await asyncio.sleep(0.2)
                order.append(f"poll done, article requests so far: {len(server.requests)}")
            await task
            order.append(f"article requests after: {len(server.requests)}")
            return order

        async def run_article() -> ArticleText:
            client = make_article_client(allow_private=True)
            extractor = ExtractionPool()
            try:
                return await ArticleFetcher(client=client, extractor=extractor,
                                            limits=limits).text(
                    server.url("/a"), deadline=10, timeout=10, max_bytes=2**20)
            finally:
                await client.aclose()
                extractor.close()

        order = asyncio.run(run())
    assert order == ["poll done, article requests so far: 0", "article requests after: 1"]


def test_full_text_concurrency_caps_fetches_across_hosts() -> None:
    route = _InFlight(page("armenia-csto.html"))
    with FeedServer() as server:
        server.set_route("/a", route)
        urls = [server.url("/a"), server.url("/a").replace("127.0.0.1", "localhost")] * 3
        run_fetches(urls, limits=HostLimits(per_host=10, total=10), concurrency=2)
    assert len(server.requests) == 6 and route.most == 2


# ----------------------------------------------------------------------------- the deadline


def slow_page(megabytes: float = 9.0) -> bytes:
    """A table of short rows: trafilatura spends about 2 s of CPU per MiB on it (any page
    this large and flat would do), under the default max_bytes of 10 MiB."""
    row = b"<tr><td>Row of the casualty table</td><td>Gyumri</td></tr>\n"
    rows = row * int(megabytes * 2**20 / len(row))
    return b"<html><body><article><table>" + rows + b"</table></article></body></html>"


def cpu_in_use() -> dict[int, float]:
    """CPU seconds used so far by this process (all its threads) and each of its descendants."""
    pids = [os.getpid(), *(pid for pid, _started in descendants(os.getpid()))]
    return {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}


def cpu_spent_since(before: dict[int, float]) -> float:
    """CPU seconds spent since ``before`` by this process and its descendants, live ones."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in cpu_in_use().items())


def test_an_extraction_past_the_deadline_is_stopped_not_abandoned(articles: FeedServer) -> None:
    """The page takes ~20 s of CPU; at the 2 s deadline the work must stop, not carry on
    unseen (a thread ran on, outside full_text_concurrency, holding the GIL)."""
    articles.set_route("/slow", Response(headers=HTML, body=slow_page()))

    async def run() -> tuple[ArticleText, float, float, ArticleText]:
        client = make_article_client(allow_private=True)
        extractor = ExtractionPool(size=1)
        fetcher = ArticleFetcher(client=client, extractor=extractor, concurrency=1)
        try:
            # A first page starts the worker, so the slow one is being extracted, not
            # waiting for a process to start, when its deadline passes.
            warm = await fetcher.text(articles.url("/a"), deadline=15, timeout=10,
                                      max_bytes=2**20)
            assert warm.failure is None, warm
            started = time.monotonic()
            slow = await fetcher.text(articles.url("/slow"), deadline=2, timeout=10,
                                      max_bytes=10 * 2**20)
            waited = time.monotonic() - started
            before = cpu_in_use()
            await asyncio.sleep(3)
            spent = cpu_spent_since(before)
            # The slot is free again and the next page is extracted by a fresh worker.
            after = await fetcher.text(articles.url("/a"), deadline=15, timeout=10,
                                       max_bytes=2**20)
            return slow, waited, spent, after
        finally:
            await client.aclose()
            extractor.close()

    slow, waited, spent, after = asyncio.run(run())
    assert slow.failure == "timed out after 2s (full_text_timeout)"
    assert waited < 8  # the deadline, give or take a loaded machine
    assert spent < 0.5, f"{spent:.2f} s of CPU spent in the 3 s after the deadline"
    assert after.failure is None and after.text is not None and "CSTO" in after.text


def test_an_extraction_worker_that_dies_fails_the_article_not_the_monitor() -> None:
    """Killed mid-page (the OOM killer, a crash in C code): that page fails with a reason,
    and the next one is extracted by a fresh worker."""
    async def run() -> tuple[str, str]:
        extractor = ExtractionPool(size=1)
        before = cpu_in_use()
        try:
            task = asyncio.ensure_future(extractor.extract(slow_page(4), url=None))
            worker = None
            for _ in range(200):  # the worker is a grandchild, under the forkserver
                await asyncio.sleep(0.05)
                busy = [pid for pid, cpu in cpu_in_use().items() if pid not in before
                        and parent_of(pid) != os.getpid() and cpu > 0.3]
                if busy:
                    (worker,) = busy
                    break
            assert worker is not None, "no extraction worker got to work"
            os.kill(worker, signal.SIGKILL)
            with pytest.raises(ArticleError) as caught:
                await task
            text = await extractor.extract(page("armenia-csto.html"), url=None)
            return str(caught.value), text
        finally:
            extractor.close()

    reason, text = asyncio.run(run())
    assert reason == "the extraction process died on this page"
    assert "CSTO" in text


# ----------------------------------------------------------------------------- the guard


@pytest.mark.parametrize(
    ("case", "url", "reason"),
    [
        ("loopback literal", "http://127.0.0.1:{port}/a", "refused: 127.0.0.1, a loopback"),
        ("loopback v6 literal", "http://[::1]:{port}/a", "refused: ::1, a loopback"),
        ("hostname resolving to loopback", "http://localhost:{port}/a",
         "refused: localhost resolves to 127.0.0.1, a loopback address"),
        ("IPv4-mapped loopback", "http://[::ffff:127.0.0.1]:{port}/a", "loopback, as"),
        ("unspecified", "http://0.0.0.0:{port}/a", "unspecified"),
        ("file scheme", "file:///etc/passwd", "refused: scheme 'file'"),
        ("ftp scheme", "ftp://127.0.0.1/a", "refused: scheme 'ftp'"),
        ("no scheme", "//127.0.0.1/a", "refused: scheme '(none)'"),
    ],
)
def test_refused_with_the_switch_off(articles: FeedServer, case: str, url: str,
                                     reason: str) -> None:
    result = fetch(url.format(port=articles.port), allow_private=False)
    assert result.failure is not None and reason in result.failure, (case, result.failure)
    assert articles.requests == []


@pytest.mark.parametrize(
    ("case", "name", "address", "reason"),
    [
        ("private 10/8", "intranet.test", "10.20.30.40", "a private address"),
        ("private 172.16/12", "intranet.test", "172.20.0.5", "a private address"),
        ("private 192.168/16", "router.test", "192.168.0.1", "a private address"),
        ("cloud metadata", "metadata.test", "169.254.169.254", "link-local (cloud metadata)"),
        ("unique local v6", "intranet6.test", "fd12:3456::1", "private (unique local)"),
        ("link-local v6", "ll.test", "fe80::1", "link-local"),
        ("multicast", "mdns.test", "224.0.0.251", "multicast"),
    ],
)
def test_names_resolving_to_refused_classes(case: str, name: str, address: str,
                                            reason: str) -> None:
    """An injected resolver stands in for DNS; the refusal means no attempt is even made."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return [address]

    result = fetch(f"http://{name}/story", allow_private=False, resolver=resolver)
    assert result.failure is not None and reason in result.failure, (case, result.failure)
    assert f"{name} resolves to {ipaddress.ip_address(address)}" in result.failure
    assert asked == [name]


class _TestHostIsPublic:
    """The guard's own policy, except that one test host name counts as public.

    With the switch off nothing on loopback is allowed, so the first, allowed hop
    of a redirect test needs a name the test vouches for; every other name and
    address is judged by the real policy.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._real = AddressPolicy()

    def check(self, host: str, address: IPAddress) -> None:
        if host != self._name:
            self._real.check(host, address)


@pytest.mark.parametrize(
    ("case", "target", "reason"),
    [
        ("to a loopback literal", "http://127.0.0.1:{port}/a", "refused: 127.0.0.1, a loopback"),
        ("to a name resolving to loopback", "http://localhost:{port}/a",
         "refused: localhost resolves to 127.0.0.1"),
        ("to the metadata service", "http://169.254.169.254/latest/meta-data/",
         "refused: 169.254.169.254, a link-local (cloud metadata) address"),
        ("to a file", "file:///etc/passwd", "refused: scheme 'file'"),
    ],
)
def test_redirect_from_an_allowed_url_to_a_refused_one(articles: FeedServer, case: str,
                                                       target: str, reason: str) -> None:
    articles.redirect("/r", target.format(port=articles.port), status=302)

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host in ("wire.test", "localhost") else []

    result = fetch(f"http://wire.test:{articles.port}/r", policy=_TestHostIsPublic("wire.test"),
                   resolver=resolver, allow_private=False)
    assert result.failure is not None and reason in result.failure, (case, result.failure)
    # The first hop was served; the refused hop never reached the server.
    assert [r.path for r in articles.requests] == ["/r"]


def test_allowed_first_hop_on_its_own_succeeds(articles: FeedServer) -> None:
    """The control for the redirect cases: the vouched-for name really is fetched."""
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    result = fetch(f"http://wire.test:{articles.port}/a", policy=_TestHostIsPublic("wire.test"),
                   resolver=resolver, allow_private=False)
    assert result.failure is None and result.text is not None
    assert articles.requests_to("/a")[0].header("Host") == f"wire.test:{articles.port}"
