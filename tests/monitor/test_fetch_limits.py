"""The body cap holds in memory too: a gzip bomb is never inflated past max_bytes."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import pytest

from monitor.fetch import BodyTooLarge, FetchError, _Inflater, fetch_feed, make_client
from tests.support import FeedServer
from tests.support.feed_server import Response

MIB = 1024 * 1024


def fetch(url: str, *, max_bytes: int) -> bytes:
    async def go() -> bytes:
        async with make_client() as client:
            result = await fetch_feed(client, url, timeout=20, max_bytes=max_bytes)
            return result.body

    return asyncio.run(go())


def _peak_memory_of_refused_bomb(url: str) -> int:
    """Peak bytes allocated while fetching ``url`` is refused past 1 MiB decompressed."""
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="after decompression"):
            fetch(url, max_bytes=1 * MIB)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compression_bomb_is_refused_without_inflating_it(
    feed_server: FeedServer, coding: str
) -> None:
    zeros = bytes(64 * MIB)
    body = gzip.compress(zeros, 9) if coding == "gzip" else zlib.compress(zeros, 9)
    feed_server.set_route("/bomb", Response(
        headers={"Content-Type": "application/rss+xml", "Content-Encoding": coding}, body=body))
    peak = _peak_memory_of_refused_bomb(feed_server.url("/bomb"))
    # Inflating one network chunk at once (64 KiB → 64 MiB) would blow far past this.
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "identity"])
def test_compressed_feeds_within_the_cap_arrive_intact(
    feed_server: FeedServer, coding: str
) -> None:
    feed = b"<rss version='2.0'><channel><title>x</title>" + b"<!-- pad -->" * 5000 + \
        b"</channel></rss>"
    if coding == "gzip":
        body = gzip.compress(feed)
    elif coding == "deflate":
        body = zlib.compress(feed)
    elif coding == "raw-deflate":  # what some servers send for "deflate"
        squeezer = zlib.compressobj(wbits=-15)
        body = squeezer.compress(feed) + squeezer.flush()
    else:
        body = feed
    headers = {"Content-Type": "application/rss+xml"}
    if coding != "identity":
        headers["Content-Encoding"] = "deflate" if coding == "raw-deflate" else coding
    feed_server.set_route("/feed", Response(headers=headers, body=body))
    assert fetch(feed_server.url("/feed"), max_bytes=MIB) == feed
    (request,) = feed_server.requests_to("/feed")
    assert request.header("Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize("chain", ["gzip, gzip", "deflate, gzip", "gzip, identity, x-gzip"])
def test_a_bomb_compressed_twice_is_refused_without_inflating_it(
    feed_server: FeedServer, chain: str
) -> None:
    # 64 MiB of zeros compressed twice is about 600 bytes: one network chunk. httpx
    # decodes a chain of codings a whole chunk at a time, 64 MiB in one step.
    body = bytes(64 * MIB)
    for coding in (c.strip() for c in chain.split(",")):
        if coding == "deflate":
            body = zlib.compress(body, 9)
        elif coding != "identity":
            body = gzip.compress(body, 9)
    assert len(body) < 70_000
    feed_server.set_route("/bomb", Response(
        headers={"Content-Type": "application/rss+xml", "Content-Encoding": chain}, body=body))
    peak = _peak_memory_of_refused_bomb(feed_server.url("/bomb"))
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_a_feed_compressed_twice_within_the_cap_arrives_intact(feed_server: FeedServer) -> None:
    feed = b"<rss version='2.0'><channel><title>x</title>" + b"<!-- pad -->" * 5000 + \
        b"</channel></rss>"
    feed_server.set_route("/feed", Response(
        headers={"Content-Type": "application/rss+xml", "Content-Encoding": "deflate, gzip"},
        body=gzip.compress(zlib.compress(feed))))
    assert fetch(feed_server.url("/feed"), max_bytes=MIB) == feed


@pytest.mark.parametrize("coding", ["br", "gzip, zstd"])
def test_a_coding_we_did_not_offer_is_an_error_that_names_it(
    feed_server: FeedServer, coding: str
) -> None:
    # httpx would decode these (when their package is installed) a chunk at a time,
    # without a bound; without the package it hands over the compressed bytes.
    feed_server.set_route("/feed", Response(
        headers={"Content-Type": "application/rss+xml", "Content-Encoding": coding},
        body=b"\x1b\x03\x00\xf8\xa5\x00\x00\x00"))
    with pytest.raises(FetchError, match=f"compressed with {coding.split()[-1]}, which was not"):
        fetch(feed_server.url("/feed"), max_bytes=MIB)


@pytest.mark.parametrize("trailer", [b"", b"\x00" * 8, b"<garbage>"])
def test_a_gzip_body_of_several_members_arrives_whole(
    feed_server: FeedServer, trailer: bytes
) -> None:
    # Concatenated .gz files, or a server compressing a response in parts, give one
    # gzip member after another; reading stopped after the first: a feed cut short.
    feed = b"<rss version='2.0'><channel><title>x</title>" + b"<!-- pad -->" * 50_000 + \
        b"</channel></rss>"
    parts = [feed[:9], feed[9:300_000], feed[300_000:]]
    body = b"".join(gzip.compress(part) for part in parts) + trailer
    feed_server.set_route("/feed", Response(headers={
        "Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}, body=body))
    assert fetch(feed_server.url("/feed"), max_bytes=MIB) == feed


def test_a_bomb_in_a_later_gzip_member_is_refused_without_inflating_it(
    feed_server: FeedServer,
) -> None:
    body = gzip.compress(b"<rss version='2.0'>") + gzip.compress(bytes(64 * MIB), 9)
    feed_server.set_route("/bomb", Response(
        headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}, body=body))
    peak = _peak_memory_of_refused_bomb(feed_server.url("/bomb"))
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_gzip_members_split_anywhere_between_network_chunks_inflate_whole() -> None:
    # A member's end, and the next one's two magic bytes, may fall in any chunk.
    feed = b"<rss version='2.0'><channel><title>x</title></channel></rss>"
    body = gzip.compress(feed[:20]) + gzip.compress(feed[20:]) + b"\x00\x00"

    async def inflate(chunks: list[bytes]) -> bytes:
        async def raw() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk
        return b"".join([piece async for piece in _Inflater("gzip").chunks(raw())])

    assert asyncio.run(inflate([body[i:i + 1] for i in range(len(body))])) == feed
    for cut in range(1, len(body)):
        assert asyncio.run(inflate([body[:cut], body[cut:]])) == feed, cut
