"""The address guard for article fetches: classes of addresses, and the check at connect time.

Only loopback ever receives traffic here. Non-loopback classes are checked with an
injected resolver and an inner backend that records connection attempts instead of
making them, so a refused address is shown never to be tried.
"""

from __future__ import annotations

import asyncio
import ipaddress

import httpcore
import pytest

from monitor.netguard import (
    AddressPolicy,
    GuardedBackend,
    RefusedAddress,
    classify,
    parse_address,
)

REFUSED = [
    # (case, address, class named in the reason)
    ("loopback v4", "127.0.0.1", "loopback"),
    ("loopback v4 elsewhere in 127/8", "127.53.0.9", "loopback"),
    ("loopback v6", "::1", "loopback"),
    ("private 10/8", "10.1.2.3", "private"),
    ("private 172.16/12 low", "172.16.0.1", "private"),
    ("private 172.16/12 high", "172.31.255.254", "private"),
    ("private 192.168/16", "192.168.1.10", "private"),
    ("unique local fc00::/7", "fd00:ec2::254", "private (unique local)"),
    ("link-local v4 (cloud metadata)", "169.254.169.254", "link-local (cloud metadata)"),
    ("link-local v6", "fe80::1", "link-local"),
    ("multicast v4", "224.0.0.251", "multicast"),
    ("multicast v6", "ff02::fb", "multicast"),
    ("unspecified v4", "0.0.0.0", "unspecified"),
    ("unspecified v6", "::", "unspecified"),
    ("this network 0/8", "0.1.2.3", "this network"),
    ("shared address space (Alibaba metadata)", "100.100.100.200", "shared address space"),
    ("broadcast", "255.255.255.255", "broadcast"),
    ("documentation range", "192.0.2.10", "not globally routable"),
    ("reserved 240/4", "240.0.0.1", "not globally routable"),
    ("IPv4-mapped loopback", "::ffff:127.0.0.1", "loopback, as ::ffff:7f00:1"),
    ("IPv4-mapped private", "::ffff:10.0.0.1", "private, as"),
    ("IPv4-mapped metadata", "::ffff:169.254.169.254", "link-local (cloud metadata), as"),
    ("IPv4-compatible loopback", "::127.0.0.1", "loopback, as"),
    ("NAT64 of metadata", "64:ff9b::a9fe:a9fe", "link-local (cloud metadata), as"),
    ("6to4 of private", "2002:c0a8:0101::1", "private, as"),
]

ALLOWED = [
    ("public v4", "93.184.215.14"),
    ("public v4 next to 172.16/12", "172.32.0.1"),
    ("public v4 next to 100.64/10", "100.128.0.1"),
    ("public v6", "2a00:1450:4001:82a::200e"),
]


@pytest.mark.parametrize(("case", "text", "reason"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_classes(case: str, text: str, reason: str) -> None:
    address = ipaddress.ip_address(text)
    found = classify(address)
    assert found is not None and found.startswith(reason), (case, found)
    assert AddressPolicy(allow_private=True).refusal(address) is None


@pytest.mark.parametrize(("case", "text"), ALLOWED, ids=[c[0] for c in ALLOWED])
def test_public_addresses_pass(case: str, text: str) -> None:
    assert classify(ipaddress.ip_address(text)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[::1]", "::1"), ("fe80::1%eth0", "fe80::1"), ("127.0.0.1", "127.0.0.1"),
     ("news.example.org", None), ("", None)],
)
def test_parse_address(text: str, expected: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed else None) == expected


class _Recorder(httpcore.AsyncNetworkBackend):
    """Stands in for the real backend: records where a connection would go, connects nowhere."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None,  # type: ignore[no-untyped-def]
                          socket_options=None):
        self.attempts.append((host, port))
        raise httpcore.ConnectError("recorder: no real connection in this test")


def _resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]
    return resolve


NAMES = {
    "intranet.test": ["10.0.0.7"],
    "metadata.test": ["169.254.169.254"],
    "rebind.test": ["127.0.0.1"],
    "mapped.test": ["::ffff:192.168.0.1"],
    "linklocal6.test": ["fe80::1"],
    "mixed.test": ["10.0.0.7", "93.184.215.14"],
    "public.test": ["93.184.215.14", "2a00:1450:4001:82a::200e"],
}


@pytest.mark.parametrize(
    ("host", "reason"),
    [("intranet.test", "intranet.test resolves to 10.0.0.7, a private address"),
     ("metadata.test", "a link-local (cloud metadata) address"),
     ("rebind.test", "rebind.test resolves to 127.0.0.1, a loopback address"),
     ("mapped.test", "a private, as ::ffff:c0a8:1 address"),
     ("linklocal6.test", "a link-local address"),
     ("10.0.0.7", "refused: 10.0.0.7, a private address"),
     ("[fd00::1]", "a private (unique local) address")],
)
def test_connect_time_check_refuses_before_any_attempt(host: str, reason: str) -> None:
    inner = _Recorder()
    backend = GuardedBackend(policy=AddressPolicy(), resolver=_resolver(NAMES), inner=inner)
    with pytest.raises(RefusedAddress) as caught:
        asyncio.run(backend.connect_tcp(host, 443))
    assert reason in str(caught.value)
    assert inner.attempts == []


def test_connect_time_check_uses_only_public_answers_of_a_mixed_name() -> None:
    inner = _Recorder()
    backend = GuardedBackend(policy=AddressPolicy(), resolver=_resolver(NAMES), inner=inner)
    with pytest.raises(httpcore.ConnectError):
        asyncio.run(backend.connect_tcp("mixed.test", 443))
    assert inner.attempts == [("93.184.215.14", 443)]


def test_connect_time_check_tries_every_public_address_by_address() -> None:
    inner = _Recorder()
    backend = GuardedBackend(policy=AddressPolicy(), resolver=_resolver(NAMES), inner=inner)
    with pytest.raises(httpcore.ConnectError):
        asyncio.run(backend.connect_tcp("public.test", 80))
    assert inner.attempts == [("93.184.215.14", 80), ("2a00:1450:4001:82a::200e", 80)]


def test_allow_private_lifts_the_check() -> None:
    inner = _Recorder()
    backend = GuardedBackend(policy=AddressPolicy(allow_private=True),
                             resolver=_resolver(NAMES), inner=inner)
    with pytest.raises(httpcore.ConnectError):
        asyncio.run(backend.connect_tcp("intranet.test", 80))
    assert inner.attempts == [("10.0.0.7", 80)]


def test_unix_sockets_are_refused() -> None:
    backend = GuardedBackend(policy=AddressPolicy(allow_private=True), inner=_Recorder())
    with pytest.raises(RefusedAddress):
        asyncio.run(backend.connect_unix_socket("/var/run/docker.sock"))
