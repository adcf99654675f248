"""Fetching feeds over HTTP with httpx: conditional GET, size and time limits.

httpx is imported here only; its exceptions become :class:`FetchError`, whose
message says what went wrong in an operator's words.

Exceptions::

    FetchError
     ├── FetchTimeout        the whole fetch took longer than its timeout
     ├── BodyTooLarge        more than max_bytes after decompression
     └── HTTPStatusError     a status that is neither 2xx nor 304
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import itertools
import os
import re
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from monitor import __version__

DEFAULT_USER_AGENT = f"wirewatch/{__version__}"
MAX_REDIRECTS = 5
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)


class FetchError(Exception):
    """A feed could not be fetched; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class FetchTimeout(FetchError):
    pass


class BodyTooLarge(FetchError):
    pass


class HTTPStatusError(FetchError):
    pass


@dataclass(frozen=True, slots=True)
class Validators:
    """Cache validators exactly as the server sent them (RFC 9110 §8.8)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    url: str                              # the URL finally answered, after redirects
    body: bytes = b""
    content_type: str | None = None
    validators: Validators = field(default_factory=Validators)
    headers: dict[str, str] = field(default_factory=dict)
    # One (status, URL it led to) per redirect hop, in order.
    redirects: tuple[tuple[int, str], ...] = ()

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def max_age(self) -> timedelta | None:
        """``Cache-Control: max-age`` (RFC 9111 §5.2.2.1), unless no-cache/no-store."""
        return parse_max_age(self.headers.get("cache-control"))

    @property
    def permanent_redirect(self) -> str | None:
        """Where the leading run of permanent redirects (301, 308) led, if any.

        RFC 9110 §15.4.2/§15.4.9: clients ought to use the new URI in future
        requests; a temporary hop (302, 303, 307) ends the permanent part.
        """
        target = None
        for status, url in self.redirects:
            if status not in (301, 308):
                break
            target = url
        return target


def make_client(*, user_agent: str | None = None, max_connections: int = 50,
                verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """One shared client: connection reuse makes conditional polls cheap."""
    return httpx.AsyncClient(
        headers={"User-Agent": user_agent or DEFAULT_USER_AGENT, "Accept": FEED_ACCEPT,
                 # Only codings read_capped() can decompress in bounded steps.
                 "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
        verify=verify,
        cookies=BoundedCookieJar(),
        # Per-phase timeouts; the whole fetch is bounded separately in fetch_feed.
        timeout=httpx.Timeout(30.0),
    )


#: Cookies a daemon-long client holds at most; one more and it forgets them all.
MAX_COOKIES = 100


class BoundedCookieJar(http.cookiejar.CookieJar):
    """A jar that keeps what servers set, but never more than MAX_COOKIES.

    Some sites redirect through a cookie check (set a cookie, redirect, expect it
    back): without a jar they answer with redirects until the limit.  But the HTTP
    clients live as long as the daemon, and httpx's own jar kept every cookie any
    server set: one setting a new name on each answer grew the jar, and the Cookie
    header sent on every later poll, until the server refused the header and every
    poll of the feed failed until a restart.  Starting over when full bounds both.
    """

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        if len(self) >= MAX_COOKIES:
            self.clear()
        super().set_cookie(cookie)


async def fetch_feed(
    client: httpx.AsyncClient,
    url: str,
    *,
    validators: Validators | None = None,
    timeout: float,
    max_bytes: int,
) -> FetchResult:
    """GET ``url`` conditionally; the body is read in full, within the limits.

    The timeout bounds the whole exchange, not each read, so a server that
    drips one byte a second cannot hold a poll for longer than ``timeout``.
    """
    headers: dict[str, str] = {}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, url, headers=headers, max_bytes=max_bytes)
    except TimeoutError as exc:
        raise FetchTimeout(f"timed out after {timeout:g}s") from exc
    except httpx.TooManyRedirects as exc:
        raise FetchError(f"more than {MAX_REDIRECTS} redirects (a redirect loop?)") from exc
    except httpx.ConnectError as exc:
        raise FetchError(_connect_message(exc)) from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"timed out ({exc.__class__.__name__})") from exc
    except httpx.DecodingError as exc:
        raise FetchError(f"the response body could not be decoded: {exc}") from exc
    except httpx.RemoteProtocolError as exc:
        raise FetchError(f"the server broke the HTTP protocol: {exc}") from exc
    except httpx.ReadError as exc:
        reason = str(exc) or "reset by peer"
        raise FetchError(f"the connection broke while reading: {reason}") from exc
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(f"unsupported URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{exc.__class__.__name__}: {exc}") from exc
    except URL_ERRORS as exc:
        raise FetchError(f"unusable URL (the feed's or a redirect's): {url_error(exc)}") \
            from exc


#: What httpx lets through, outside its HTTPError, for a URL it cannot request
#: (the feed's own, or a redirect's Location: ``javascript:``, ``data:``, a
#: malformed IDNA name, port 99999, the last inside anyio's ExceptionGroup).
#: Let through, the poll failed unrecorded and the feed was fetched every pass.
URL_ERRORS = (httpx.InvalidURL, ValueError, OverflowError, ExceptionGroup)


def url_error(exc: BaseException) -> str:
    """One of :data:`URL_ERRORS` in words: its first leaf if an ExceptionGroup."""
    while isinstance(exc, ExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{exc.__class__.__name__}: {exc}"


async def _fetch(client: httpx.AsyncClient, url: str, *, headers: dict[str, str],
                 max_bytes: int) -> FetchResult:
    async with client.stream("GET", url, headers=headers) as response:
        hops = [*response.history, response]
        redirects = tuple(
            (hop.status_code, str(after.request.url))
            for hop, after in itertools.pairwise(hops)
        )
        if response.status_code == 304 and not headers:
            # Only a conditional request may get a 304 (RFC 9110 §15.4.5). Taken as
            # "unchanged", a server answering every request so looked healthy for
            # good while its feed never brought an item.
            raise HTTPStatusError("HTTP 304 Not Modified to a request without validators "
                                  "(If-None-Match, If-Modified-Since)", status=304)
        if response.status_code == 304:
            return FetchResult(status=304, url=str(response.url), redirects=redirects,
                               headers=dict(response.headers),
                               validators=_validators(response))
        if not 200 <= response.status_code < 300:
            # Retry-After means "wait" only on 429 and 503 (RFC 6585 §4, RFC 9110 §15.6.4).
            wait = response.headers.get("retry-after") if response.status_code in (429, 503) \
                else None
            raise HTTPStatusError(
                f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
                status=response.status_code,
                retry_after=parse_retry_after(wait),
            )
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and response.headers.get("content-encoding") is None \
                and int(declared) > max_bytes:
            raise BodyTooLarge(f"body of {int(declared)} bytes exceeds max_bytes ({max_bytes})",
                               status=response.status_code)
        body = await read_capped(response, max_bytes=max_bytes)
        return FetchResult(
            status=response.status_code, url=str(response.url), body=body,
            content_type=response.headers.get("content-type"),
            validators=_validators(response), headers=dict(response.headers),
            redirects=redirects,
        )


async def read_capped(response: httpx.Response, *, max_bytes: int) -> bytes:
    """The response body, decompressed, refusing more than ``max_bytes``.

    httpx's own decoders inflate each network chunk in one call, so a 64 KiB
    chunk of a gzip bomb becomes 64 MiB in memory before any cap can look at
    it. Inflating the raw stream here with ``max_length`` keeps every step
    within the cap.
    """
    # Codings in the order applied (RFC 9110 §8.4); undone last first. A chain
    # ("gzip, gzip") is inflated step by step too: left to httpx, one 64 KiB chunk
    # of gzip-in-gzip became gigabytes before any cap could look at it.
    codings = [coding.strip().lower() for coding in
               response.headers.get_list("content-encoding", split_commas=True)]
    unbounded = [coding for coding in codings if coding in _UNBOUNDED_CODINGS]
    if unbounded:
        raise FetchError(f"body compressed with {unbounded[0]}, which was not offered "
                         f"(Accept-Encoding: gzip, deflate)",
                         status=response.status_code)
    chunks = response.aiter_raw()
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip", "deflate"):
            chunks = _Inflater(coding).chunks(chunks)
        # identity, and names nobody defined ("utf-8", "none"), are left as they are
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body exceeds max_bytes ({max_bytes}) after decompression",
                               status=response.status_code)
    return bytes(body)


#: Codings httpx would decode a whole network chunk at a time, without a bound.
_UNBOUNDED_CODINGS = ("br", "zstd", "compress", "x-compress")


class _Inflater:
    """Incremental gzip/deflate decoding in steps of at most STEP output bytes.

    A gzip body may hold several members one after another (RFC 1952 §2.2: what
    concatenating .gz files, or a server compressing a response in parts, gives);
    each is inflated in turn, as gzip and browsers do. Bytes after the end that do
    not start a member are ignored, as browsers ignore them.
    """

    STEP = 256 * 1024
    _GZIP_MAGIC = b"\x1f\x8b"

    def __init__(self, coding: str) -> None:
        # 47 = 32 + 15: zlib detects a gzip or zlib header itself. Some servers
        # send raw deflate for "deflate"; that is retried with -15 below.
        self._decoder = zlib.decompressobj(47 if coding != "deflate" else 15)
        self._raw_deflate_fallback = coding == "deflate"
        self._members = coding != "deflate"
        self._started = False
        # After a member's end: the bytes seen since, until they show what follows.
        self._after_end: bytes | None = None
        self._done = False

    async def chunks(self, raw: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for data in raw:
            for piece in self._feed(data):
                yield piece
        tail = self._decoder.flush()
        if tail:
            yield tail

    def _feed(self, data: bytes) -> Iterator[bytes]:
        while data and not self._done:
            if self._after_end is not None:
                data = self._after_end + data
                if len(data) < len(self._GZIP_MAGIC):
                    self._after_end = data
                    return
                self._after_end = None
                if not (self._members and data.startswith(self._GZIP_MAGIC)):
                    self._done = True
                    return
                self._decoder = zlib.decompressobj(47)
            try:
                out = self._decoder.decompress(data, self.STEP)
            except zlib.error as exc:
                if self._raw_deflate_fallback and not self._started:
                    self._raw_deflate_fallback = False
                    self._decoder = zlib.decompressobj(-15)
                    continue
                raise FetchError(f"the response body could not be decompressed: {exc}") \
                    from exc
            self._started = True
            if out:
                yield out
            data = self._decoder.unconsumed_tail
            if self._decoder.eof:
                self._after_end = b""
                data = self._decoder.unused_data


def _validators(response: httpx.Response) -> Validators:
    return Validators(etag=response.headers.get("etag"),
                      last_modified=response.headers.get("last-modified"))


def parse_retry_after(value: str | None) -> timedelta | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return _capped_seconds(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(when - datetime.now(UTC), timedelta(0)), timedelta(seconds=_LONGEST_WAIT))


#: The longest wait a server's Retry-After or max-age is taken at (68 years).
_LONGEST_WAIT = 2**31


def _capped_seconds(digits: str) -> timedelta:
    """``digits`` seconds, at most :data:`_LONGEST_WAIT`.

    A server's "wait 10^14 seconds" overflowed the date arithmetic, and a number of
    thousands of digits int() itself: every poll of the feed failed without being
    recorded, so the feed stayed due and was polled (and failed) every pass.
    """
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(_LONGEST_WAIT)):
        return timedelta(seconds=_LONGEST_WAIT)
    return timedelta(seconds=min(int(digits), _LONGEST_WAIT))


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*no-(?:cache|store)\b", re.IGNORECASE)


def parse_max_age(value: str | None) -> timedelta | None:
    if not value or _NO_CACHE.search(value):
        return None
    match = _MAX_AGE.search(value)
    if match is None:
        return None
    return _capped_seconds(match.group(1))


def _connect_message(exc: httpx.ConnectError) -> str:
    text = str(exc) or exc.__class__.__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return f"TLS error: {text}"
    try:
        url = exc.request.url
        where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    except RuntimeError:  # no request attached
        return f"cannot connect: {text}"
    # httpx words a refused connection "All connection attempts failed"; the OS error
    # underneath (refused, unreachable, no such host) is what tells the operator
    # what to fix.
    cause = _root_os_error(exc)
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host {url.host}: {cause.strerror or cause}"
    if cause is not None and cause.errno:
        return f"cannot connect to {where}: {os.strerror(cause.errno).lower()}"
    return f"cannot connect to {where}: {text}"


def _root_os_error(exc: BaseException) -> OSError | None:
    found: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            found = current
        current = current.__cause__ or current.__context__
    return found
