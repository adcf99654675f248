"""A feed server that misbehaves on purpose, on real sockets on 127.0.0.1.

``http.server`` is too well-behaved to reset a connection, drip a byte a second
or stream a body forever, so this server speaks HTTP/1.1 by hand over asyncio
streams, in a background thread. Each path is one hostile case::

    with HostileServer() as hostile:
        url = hostile.url("/drip")          # 1 byte per second, forever
        tls = hostile.tls_url("/good")      # TLS with a certificate nobody trusts

Every response closes its connection. Endless answers stop as soon as the
client goes away. Requests are recorded (path and headers) as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Self

import trustme

__all__ = ["CASES", "GOOD_FEED", "UNUSABLE_LOCATIONS", "HostileServer", "SeenRequest"]

GOOD_FEED = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Good</title>'
    b"<link>http://127.0.0.1/</link><item><title>Budget vote today</title>"
    b"<link>http://127.0.0.1/good/1</link><guid>good-1</guid></item></channel></rss>"
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><guid>laugh</guid></item></channel></rss>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<rss version="2.0"><channel><title>x</title>
<item><title>&secret;</title><guid>xxe</guid></item></channel></rss>"""

# Declared UTF-8, but a title holds bytes that are not UTF-8 at all.
INVALID_UTF8 = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Bad</title>'
    b"<item><title>Budget \xff\xfe\xc3 broken bytes</title><guid>bad-utf8-1</guid>"
    b"<link>http://127.0.0.1/bad/1</link></item></channel></rss>"
)

# Declared ISO-8859-1 in the XML, but the bytes are Cyrillic in windows-1251.
WRONG_ENCODING = (
    '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel>'
    "<title>Новости</title><item><title>Бюджет принят</title><guid>w-1</guid>"
    "<link>http://127.0.0.1/w/1</link></item></channel></rss>"
).encode("windows-1251")

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
    b"<body><h1>Our new website</h1><p>The feed moved.</p></body></html>"
)

ONE_GIB = 2**30


@cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros (six times the default max_bytes), gzipped to about 64 KiB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    parts = [compressor.compress(zeros) for _ in range(64)]
    parts.append(compressor.flush())
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class SeenRequest:
    path: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


Writer = asyncio.StreamWriter
Case = Callable[[Writer], Awaitable[None]]


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()),
             "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


async def _send(writer: Writer, body: bytes, *, status: str = "200 OK",
                content_type: str = "application/rss+xml",
                extra: dict[str, str] | None = None) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(extra or {})}
    writer.write(_head(status, headers) + body)
    await writer.drain()


async def _forever(writer: Writer, chunk: bytes, *, pause: float = 0.0,
                   framing: Callable[[bytes], bytes] = lambda c: c) -> None:
    """Write ``chunk`` again and again until the client hangs up."""
    while not writer.is_closing():
        writer.write(framing(chunk))
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
        else:
            await asyncio.sleep(0)


async def good(writer: Writer) -> None:
    await _send(writer, GOOD_FEED)


async def billion_laughs(writer: Writer) -> None:
    await _send(writer, BILLION_LAUGHS)


async def xxe(writer: Writer) -> None:
    await _send(writer, XXE)


async def gzip_bomb_case(writer: Writer) -> None:
    await _send(writer, gzip_bomb(), extra={"Content-Encoding": "gzip"})


async def huge_declared(writer: Writer) -> None:
    """A 1 GiB body, announced in Content-Length, streamed until the client leaves."""
    writer.write(_head("200 OK", {"Content-Type": "application/rss+xml",
                                  "Content-Length": str(ONE_GIB)}))
    await _forever(writer, b"<rss>" + b" " * 65531)


async def huge_undeclared(writer: Writer) -> None:
    """A 1 GiB-and-more body without Content-Length (ends with the connection)."""
    writer.write(_head("200 OK", {"Content-Type": "application/rss+xml"}))
    await _forever(writer, b" " * 65536)


async def endless_chunked(writer: Writer) -> None:
    writer.write(_head("200 OK", {"Content-Type": "application/rss+xml",
                                  "Transfer-Encoding": "chunked"}))
    item = b"<item><title>again</title></item>" * 500
    await _forever(writer, item, framing=lambda c: b"%x\r\n%s\r\n" % (len(c), c))


async def drip(writer: Writer) -> None:
    """Headers at once, then one byte of body per second, forever."""
    writer.write(_head("200 OK", {"Content-Type": "application/rss+xml",
                                  "Content-Length": str(len(GOOD_FEED) * 100)}))
    await _forever(writer, b" ", pause=1.0)


async def redirect_loop(writer: Writer) -> None:
    await _send(writer, b"", status="302 Found", extra={"Location": "/redirect-loop-b"})


async def redirect_loop_b(writer: Writer) -> None:
    await _send(writer, b"", status="302 Found", extra={"Location": "/redirect-loop"})


#: Locations httpx cannot turn into a request: its own parser refuses the first,
#: the IDNA codec the second, the socket layer the third (port out of range).
UNUSABLE_LOCATIONS = {
    "/redirect-to-javascript": "javascript:alert(1)",
    "/redirect-to-bad-idna": "http://xn--/feed",
    "/redirect-to-port-99999": "http://127.0.0.1:99999/feed",
}


def _redirect_to(location: str) -> Case:
    async def case(writer: Writer) -> None:
        await _send(writer, b"", status="302 Found", extra={"Location": location})
    return case


async def not_modified_unasked(writer: Writer) -> None:
    """304 to every request, conditional or not, and no validators of its own."""
    await _send(writer, b"", status="304 Not Modified")


async def invalid_utf8(writer: Writer) -> None:
    await _send(writer, INVALID_UTF8, content_type="application/rss+xml; charset=utf-8")


async def wrong_encoding(writer: Writer) -> None:
    await _send(writer, WRONG_ENCODING, content_type="application/rss+xml")


async def html_page(writer: Writer) -> None:
    await _send(writer, HTML_PAGE, content_type="text/html; charset=utf-8")


async def empty(writer: Writer) -> None:
    await _send(writer, b"")


async def reset(writer: Writer) -> None:
    """Close with a TCP RST instead of an answer (SO_LINGER on, timeout 0)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


CASES: dict[str, Case] = {
    "/good": good,
    "/billion-laughs": billion_laughs,
    "/xxe": xxe,
    "/gzip-bomb": gzip_bomb_case,
    "/huge-declared": huge_declared,
    "/huge-undeclared": huge_undeclared,
    "/endless-chunked": endless_chunked,
    "/drip": drip,
    "/redirect-loop": redirect_loop,
    "/redirect-loop-b": redirect_loop_b,
    "/invalid-utf8": invalid_utf8,
    "/wrong-encoding": wrong_encoding,
    "/html": html_page,
    "/empty": empty,
    "/reset": reset,
    "/not-modified-unasked": not_modified_unasked,
    **{path: _redirect_to(location) for path, location in UNUSABLE_LOCATIONS.items()},
}


class HostileServer:
    """Plain HTTP on ``url()`` and TLS (untrusted certificate) on ``tls_url()``."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.tls_port = 0
        self.ca = trustme.CA()  # trusted by nobody: the client must refuse it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def tls_url(self, path: str) -> str:
        return f"https://{self.host}:{self.tls_port}{path}"

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path == path]

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start())
            ready.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="HostileServer", daemon=True)
        self._thread.start()
        if not ready.wait(60):
            raise RuntimeError("hostile server did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None

    async def _start(self) -> None:
        plain = await asyncio.start_server(self._serve, self.host, 0)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(self.host).configure_cert(context)
        tls = await asyncio.start_server(self._serve, self.host, 0, ssl=context)
        self.port = plain.sockets[0].getsockname()[1]
        self.tls_port = tls.sockets[0].getsockname()[1]
        self._servers = [plain, tls]

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- HTTP by hand ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            _method, path, *_ = [*lines[0].split(" "), "", ""]
            headers = tuple(
                (k.strip(), v.strip())
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            )
            with self._lock:
                self._requests.append(SeenRequest(path=path, headers=headers))
            case = CASES.get(path)
            if case is None:
                await _send(writer, b"not found", status="404 Not Found",
                            content_type="text/plain")
            else:
                await case(writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass  # the client left, or refused our certificate: that is the point
        except asyncio.CancelledError:
            pass  # the server is stopping; endless answers end here
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


def decompressed_size(data: bytes) -> int:
    """For tests of this module: how big the gzip bomb really is."""
    return len(gzip.decompress(data))
