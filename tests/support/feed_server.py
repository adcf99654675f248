"""An HTTP server for feeds on 127.0.0.1, configurable while it runs.

Routes map a path to a `Response` or to a callable `(Request) -> Response`::

    with FeedServer() as server:
        server.set_route("/news.xml", Response(body=xml, headers={"ETag": '"v1"'}))
        server.serve_file("/bbc.xml", corpus_dir / "bbc.xml")
        url = server.url("/news.xml")
        ...
        assert server.requests_to("/news.xml")[-1].header("If-None-Match") == '"v1"'

A `Response` that carries an ETag or Last-Modified answers conditional requests with
304 Not Modified, following RFC 9110 §13.1.2 (If-None-Match, weak comparison) and
§13.1.3 (If-Modified-Since, only when If-None-Match is absent), the way a well-behaved
feed host does. Unknown paths get 404. Every request is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.http_base import BackgroundHTTPServer, read_body, send_response

__all__ = ["FeedServer", "Request", "Response", "Route"]

_CONTENT_TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/feed+json",
    ".html": "text/html; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the server saw it. `path` includes the query string."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at: float  # time.time()

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name, or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass(frozen=True, slots=True)
class Response:
    """What to answer. `delay` holds the answer back (seconds) to exercise timeouts;
    `conditional=False` makes the server ignore validators, like hosts that always
    send the full body."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    conditional: bool = True


Route = Response | Callable[[Request], Response]


class FeedServer(BackgroundHTTPServer):
    """Serves `routes`; `delay` (seconds) is added before every answer."""

    def __init__(
        self, routes: Mapping[str, Route] | None = None, *, delay: float = 0.0, port: int = 0
    ) -> None:
        super().__init__(port=port)
        self.delay = delay
        self._lock = threading.Condition()
        self._routes: dict[str, Route] = dict(routes or {})
        self._requests: list[Request] = []

    # --- configuration ---------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return self.origin + path

    def set_route(self, path: str, route: Route | bytes) -> None:
        """Serve `route` at `path` (exact path, or path with query). Bytes mean 200 + body."""
        if isinstance(route, bytes):
            route = Response(body=route)
        with self._lock:
            self._routes[path] = route

    def remove_route(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def serve_feed(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml; charset=utf-8",
        etag: str | None = None,
        last_modified: float | None = None,
    ) -> None:
        """Serve a feed with optional validators (`etag` quoted or not; `last_modified`
        as epoch seconds) so clients can revalidate with conditional GET."""
        headers = {"Content-Type": content_type}
        if etag is not None:
            headers["ETag"] = etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'
        if last_modified is not None:
            headers["Last-Modified"] = _http_date(last_modified)
        self.set_route(path, Response(headers=headers, body=body))

    def serve_file(
        self,
        path: str,
        file: Path,
        *,
        content_type: str | None = None,
        validators: bool = True,
    ) -> None:
        """Serve a file's bytes; with `validators`, an ETag from its content and a
        Last-Modified from its mtime, as static file servers do."""
        data = file.read_bytes()
        ctype = content_type or _CONTENT_TYPES.get(file.suffix.lower(), "application/xml")
        headers = {"Content-Type": ctype}
        if validators:
            headers["ETag"] = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            headers["Last-Modified"] = _http_date(file.stat().st_mtime)
        self.set_route(path, Response(headers=headers, body=data))

    def redirect(self, path: str, to: str, *, status: int = 301) -> None:
        """Answer `path` with a redirect to `to` (a path on this server or a full URL)."""
        location = self.url(to) if to.startswith("/") else to
        self.set_route(path, Response(status=status, headers={"Location": location}))

    # --- what was received ------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Request]:
        """Requests whose path (with or without the query) equals `path`."""
        return [r for r in self.requests if r.path == path or r.path.split("?")[0] == path]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for_requests(self, count: int, timeout: float = 60.0) -> list[Request]:
        """Block until at least `count` requests arrived; raise TimeoutError if not."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"feed server got {len(self._requests)} requests, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self._requests)

    # --- HTTP -------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        request = Request(
            method=handler.command,
            path=handler.path,
            headers=tuple(handler.headers.items()),
            body=read_body(handler),
            received_at=time.time(),
        )
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()
            route = self._routes.get(request.path) or self._routes.get(urlsplit(request.path).path)
        if route is None:
            response = Response(
                status=404, headers={"Content-Type": "text/plain"}, body=b"not found"
            )
        elif isinstance(route, Response):
            response = route
        else:
            try:
                response = route(request)
            except Exception as exc:  # a broken test callable should show, not hang
                response = Response(status=500, body=f"route raised {exc!r}".encode())
        delay = self.delay + response.delay
        if delay:
            time.sleep(delay)
        if (
            response.conditional
            and response.status == 200
            and _is_not_modified(request, response.headers)
        ):
            kept = {
                k: v
                for k, v in response.headers.items()
                if k.lower() in ("etag", "last-modified", "cache-control", "expires", "vary")
            }
            response = Response(status=304, headers=kept)
        # the client timed out and left; the request is recorded anyway
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            send_response(handler, response.status, dict(response.headers), response.body)


def _http_date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(epoch), UTC), usegmt=True)


def _etag_opaque(tag: str) -> str:
    """Weak comparison (RFC 9110 §8.8.3.2): W/"x" and "x" match."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def _is_not_modified(request: Request, headers: Mapping[str, Any]) -> bool:
    lowered = {k.lower(): str(v) for k, v in headers.items()}
    etag = lowered.get("etag")
    last_modified = lowered.get("last-modified")
    if_none_match = request.header("If-None-Match")
    if if_none_match is not None:
        # RFC 9110 §13.2.2: when If-None-Match is present, If-Modified-Since is ignored.
        if etag is None:
            return False
        candidates = [c.strip() for c in if_none_match.split(",")]
        return "*" in candidates or _etag_opaque(etag) in {_etag_opaque(c) for c in candidates}
    if_modified_since = request.header("If-Modified-Since")
    if if_modified_since is None or last_modified is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
        modified = parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False  # an invalid date is ignored (RFC 9110 §13.1.3)
    return modified <= since
