"""The hostile server misbehaves exactly as its cases say (raw sockets, no client library)."""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.hostile_server import GOOD_FEED, HostileServer, gzip_bomb


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def get(server: HostileServer, path: str, *, read: int = 1 << 16,
        timeout: float = 5.0) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while len(data) < read:
            chunk = sock.recv(read - len(data))
            if not chunk:
                break
            data += chunk
        return data


def test_good_answers_a_feed(hostile: HostileServer) -> None:
    answer = get(hostile, "/good")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(GOOD_FEED)
    assert hostile.requests_to("/good")[-1].header("Host") == "x"


def test_reset_answers_with_a_tcp_reset(hostile: HostileServer) -> None:
    with pytest.raises(ConnectionResetError):
        get(hostile, "/reset")


def test_drip_sends_about_one_byte_per_second(hostile: HostileServer) -> None:
    with socket.create_connection((hostile.host, hostile.port), timeout=5) as sock:
        sock.sendall(b"GET /drip HTTP/1.1\r\nHost: x\r\n\r\n")
        head = sock.recv(4096)
        assert b"200 OK" in head
        started = time.monotonic()
        received = 0
        while time.monotonic() - started < 1.5:
            sock.settimeout(2)
            received += len(sock.recv(100))
        assert 1 <= received < 10  # a trickle, never a burst


def test_endless_answers_keep_coming(hostile: HostileServer) -> None:
    for path in ("/huge-undeclared", "/endless-chunked", "/huge-declared"):
        assert len(get(hostile, path, read=4 << 20)) == 4 << 20


def test_gzip_bomb_is_small_on_the_wire_and_large_inside() -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 1 << 20 and len(gzip.decompress(bomb)) == 64 << 20
