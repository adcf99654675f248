"""A threaded HTTP server on 127.0.0.1 that runs in the background: the base of the
feed server and the Slack stand-in.

`http.server.ThreadingHTTPServer` serves each connection in its own thread, so clients
that poll many feeds at once are served concurrently, as a real server would.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["BackgroundHTTPServer"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A restarted server may rebind the port its predecessor used a moment ago.
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: BackgroundHTTPServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive as real servers do; every response carries a
    # Content-Length so clients know where it ends.
    protocol_version = "HTTP/1.1"
    server: _Server

    def _dispatch(self) -> None:
        self.server.owner.handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded by the owner, not printed to stderr."""


class BackgroundHTTPServer:
    """Start/stop plumbing; subclasses implement `handle(handler)`.

    `port` stays the same across `stop()` and `start()`, so a test can take the server
    down and bring it back where clients expect it.
    """

    def __init__(self, *, port: int = 0) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        """ "http://127.0.0.1:<port>", valid once started."""
        if not self.port:
            raise RuntimeError("server not started yet")
        return f"http://{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError


def send_response(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes,
) -> None:
    """Write one complete response; HEAD gets the headers without the body."""
    handler.send_response(status)
    items = headers.items() if isinstance(headers, dict) else headers
    names = set()
    for name, value in items:
        names.add(name.lower())
        handler.send_header(name, value)
    if "content-length" not in names and status not in (204, 304) and status >= 200:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD" and status not in (204, 304):
        handler.wfile.write(body)
    handler.wfile.flush()


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body by Content-Length (clients here never send chunked bodies)."""
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""
