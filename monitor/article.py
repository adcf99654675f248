"""Article text: fetch an item's link and extract the story from the page.

Many feeds carry a headline and a cut-off teaser; the words a rule looks for
are in the article. :class:`ArticleFetcher` fetches the page (politely: the
per-host limit shared with feed polls, a cap of its own, the same User-Agent)
through the connect-time address guard of :mod:`monitor.netguard`, following
redirects itself so every hop is checked, and :func:`extract_text` keeps the
story and drops navigation, "read also" boxes, comments and sidebars. It runs
in a worker process (:mod:`monitor.extractpool`), which is killed when the
item's deadline passes: a thread could only be abandoned, still running.

trafilatura does the extraction and lives in this module only. It is given
the bytes we fetched; it never fetches anything itself (``extract`` has no
network code path; tests run it with sockets disabled).

Every failure is an :class:`ArticleError` whose message is the reason stored
with the item and counted in ``wirewatch feeds``; :meth:`ArticleFetcher.text`
never raises, it returns :class:`ArticleText` with ``failure`` set.

Exceptions::

    ArticleError          any reason the article text is not usable
     └── (RefusedAddress from monitor.netguard becomes an ArticleError)
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from monitor.fetch import (
    DEFAULT_USER_AGENT,
    URL_ERRORS,
    BoundedCookieJar,
    FetchError,
    read_capped,
    url_error,
)
from monitor.netguard import AddressPolicy, GuardedTransport, Policy, RefusedAddress, Resolver
from monitor.netguard import system_resolver as _system_resolver

MAX_REDIRECTS = 5
#: Less than this is a teaser, a consent wall or a login page, not an article.
MIN_TEXT_CHARS = 200
ARTICLE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_REDIRECTS = (301, 302, 303, 307, 308)
# Google's structured data for subscription content marks the page itself:
# https://developers.google.com/search/docs/appearance/structured-data/paywalled-content
_NOT_FREE = re.compile(
    rb"""(?:["']isAccessibleForFree["']\s*:\s*["']?false["']?)"""
    rb"""|(?:itemprop\s*=\s*["']isAccessibleForFree["'][^>]*content\s*=\s*["']false["'])""",
    re.IGNORECASE,
)


class ArticleError(Exception):
    """The article text could not be had; the message is the reason, in an editor's words."""


@dataclass(frozen=True, slots=True)
class ArticleText:
    """The outcome for one link: ``text`` or a ``failure`` reason, never both."""

    url: str
    text: str | None = None
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    url: str  # after redirects
    body: bytes
    content_type: str | None


class TextExtractor(Protocol):
    """Runs :func:`extract_text` where it can be stopped (:mod:`monitor.extractpool`).

    Cancelling :meth:`extract` must stop the extraction, not only the wait for it.
    """

    async def extract(self, body: bytes, *, url: str | None) -> str: ...


class HostSlot(Protocol):
    def release_host(self) -> None: ...


class HostLimiter(Protocol):
    """Per-host (and global) limits shared with feed polls (:class:`monitor.hosts.HostLimits`)."""

    def slot(self, url: str) -> AbstractAsyncContextManager[HostSlot]: ...


class _Unlimited:
    """No shared limits: for tools and tests that fetch articles on their own."""

    def release_host(self) -> None:
        pass

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[HostSlot]:
        yield self


def make_article_client(
    *,
    user_agent: str | None = None,
    allow_private: bool = False,
    policy: Policy | None = None,
    max_connections: int = 4,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """A client whose every connection passes the address guard; redirects are ours to follow.

    ``policy`` replaces the one ``allow_private`` chooses (tests use it to treat
    one test host name on loopback as public).
    """
    transport = GuardedTransport(
        policy=policy or AddressPolicy(allow_private=allow_private),
        resolver=resolver or _system_resolver,
        verify=verify,
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
    )
    return httpx.AsyncClient(
        transport=transport,
        headers={"User-Agent": user_agent or DEFAULT_USER_AGENT, "Accept": ARTICLE_ACCEPT,
                 "Accept-Encoding": "gzip, deflate"},
        follow_redirects=False,
        trust_env=False,
        cookies=BoundedCookieJar(),
        timeout=httpx.Timeout(30.0),
    )


class ArticleFetcher:
    """Fetches and extracts article text, never more than ``concurrency`` at once."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        extractor: TextExtractor,
        limits: HostLimiter | None = None,
        concurrency: int = 4,
    ) -> None:
        self._client = client
        self._extractor = extractor
        self._limits: HostLimiter = limits or _Unlimited()
        self._gate = asyncio.Semaphore(concurrency)

    async def text(self, url: str | None, *, deadline: float, timeout: float,
                   max_bytes: int) -> ArticleText:
        """The article text at ``url``, or why not; waits at most ``deadline`` seconds.

        ``timeout`` and ``max_bytes`` bound each HTTP exchange, as for feed polls;
        ``deadline`` bounds everything, waiting for a free slot included. An
        extraction still running at the deadline is stopped (the extractor's
        contract), so it holds no CPU and no slot past it.
        """
        if not url:
            return ArticleText(url="", failure="the item has no link")
        try:
            async with asyncio.timeout(deadline):
                async with self._gate:
                    page = await self.fetch(url, timeout=timeout, max_bytes=max_bytes)
                    text = await self._extractor.extract(page.body, url=page.url)
            return ArticleText(url=page.url, text=text)
        except TimeoutError:
            return ArticleText(url=url,
                               failure=f"timed out after {deadline:g}s (full_text_timeout)")
        except ArticleError as exc:
            return ArticleText(url=url, failure=str(exc))

    async def fetch(self, url: str, *, timeout: float, max_bytes: int) -> Page:
        """GET ``url``, following up to MAX_REDIRECTS redirects, each hop checked anew."""
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                check_scheme(url)
                async with self._limits.slot(url) as slot:
                    try:
                        async with asyncio.timeout(timeout):
                            outcome = await self._exchange(url, max_bytes=max_bytes)
                    except TimeoutError as exc:
                        raise ArticleError(f"timed out after {timeout:g}s") from exc
                    finally:
                        slot.release_host()
            except URL_ERRORS as exc:
                raise ArticleError(f"unusable URL (the link's or a redirect's): "
                                   f"{url_error(exc)}") from exc
            if isinstance(outcome, Page):
                return outcome
            url = outcome
        raise ArticleError(f"more than {MAX_REDIRECTS} redirects")

    async def _exchange(self, url: str, *, max_bytes: int) -> Page | str:
        """One request: the page, or the URL a redirect points to."""
        try:
            async with self._client.stream("GET", url) as response:
                if response.status_code in _REDIRECTS:
                    location: str | None = response.headers.get("location")
                    if not location:
                        raise ArticleError(f"HTTP {response.status_code} without a Location")
                    return urljoin(url, location)
                if not 200 <= response.status_code < 300:
                    raise ArticleError(
                        f"HTTP {response.status_code} {response.reason_phrase}".rstrip())
                content_type = response.headers.get("content-type")
                media = (content_type or "").split(";", 1)[0].strip().lower()
                if media and media not in _HTML_TYPES:
                    raise ArticleError(f"not an HTML page ({media})")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes \
                        and response.headers.get("content-encoding") is None:
                    raise ArticleError(f"page of {int(declared)} bytes exceeds max_bytes "
                                       f"({max_bytes})")
                try:
                    body = await read_capped(response, max_bytes=max_bytes)
                except FetchError as exc:
                    raise ArticleError(f"page {exc}") from exc
                if not media and not _looks_like_html(body):
                    raise ArticleError("not an HTML page (no Content-Type, no markup)")
                return Page(url=str(response.url), body=body, content_type=content_type)
        except RefusedAddress as exc:
            raise ArticleError(str(exc)) from exc
        except httpx.TimeoutException as exc:
            raise ArticleError(f"timed out ({exc.__class__.__name__})") from exc
        except httpx.HTTPError as exc:
            raise ArticleError(f"cannot fetch: {exc.__class__.__name__}: {exc}") from exc


def check_scheme(url: str) -> None:
    """Only http and https: a feed could link to file:, ftp: or gopher:."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ArticleError(f"refused: scheme {scheme or '(none)'!r} (only http and https)")


def extract_text(body: bytes, *, url: str | None = None) -> str:
    """The main text of an HTML page, or ArticleError saying why there is none usable."""
    if _NOT_FREE.search(body):
        raise ArticleError("paywall: the page marks itself isAccessibleForFree: false")
    # Imported on first use: a monitor without full_text feeds does not pay its
    # start-up time and memory (0.3 s, 12 MiB with lxml and dateparser).
    import trafilatura

    text = trafilatura.extract(
        body,
        url=url,
        include_comments=False,
        include_tables=True,
        favor_precision=True,  # sidebars and teaser lists must not leak into the text
        with_metadata=False,
        deduplicate=False,
    )
    text = (text or "").strip()
    if len(text) < MIN_TEXT_CHARS:
        raise ArticleError(
            f"too little text extracted ({len(text)} characters, need {MIN_TEXT_CHARS})")
    return text


def _looks_like_html(body: bytes) -> bool:
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--"))
