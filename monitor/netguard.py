"""Where article fetches may connect: address classes, and a check at connect time.

Feed URLs are chosen by the operator; the links inside feeds are chosen by
whoever writes the feed. Fetching such a link from inside a newsroom network
must not become a way to reach the intranet, the machine itself or a cloud
metadata service (server-side request forgery).

The check is made on the address *actually connected to*, after DNS, by the
network backend under httpx, so it holds for every redirect hop and cannot be
dodged by a name that resolves differently the second time (DNS rebinding).
Checking the URL's host before the request, as Miniflux did until the fix for
CVE-2026-21885, is not enough: the name is resolved again when connecting.

Refused (see :data:`REFUSED_NETWORKS`): loopback, the RFC 1918 private ranges
and IPv6 unique-local, link-local (169.254.169.254 is the metadata service of
most clouds), multicast, unspecified, 100.64.0.0/10 (RFC 6598 shared address
space: carrier-grade NAT, and Alibaba Cloud's metadata at 100.100.100.200), and
anything else not globally routable (documentation, benchmarking, reserved
ranges). IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
IPv4-compatible, NAT64 ``64:ff9b::/96``, 6to4, Teredo) are judged by that
IPv4 address too.

``AddressPolicy(allow_private=True)`` (config ``allow_private_article_hosts``)
lifts all of this, for intranet deployments and tests on loopback.

Exceptions::

    RefusedAddress     an address (or scheme) an article fetch may not use
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``(host, port) -> addresses``; injectable so tests can map names without DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: (network, class) in the order they are tested; the first match names the class.
REFUSED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V6("::/128"), "unspecified"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V6("::1/128"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local (cloud metadata)"),
    (_V6("fe80::/10"), "link-local"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V6("ff00::/8"), "multicast"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V6("fc00::/7"), "private (unique local)"),
    (_V6("fec0::/10"), "private (site-local)"),
    (_V4("100.64.0.0/10"), "shared address space (carrier-grade NAT)"),
    (_V4("0.0.0.0/8"), "this network"),
    (_V4("255.255.255.255/32"), "broadcast"),
)

_NAT64 = _V6("64:ff9b::/96")  # RFC 6052 well-known prefix
_IPV4_COMPATIBLE = _V6("::/96")  # deprecated by RFC 4291 §2.5.5.1, still routed by some stacks


class Policy(typing.Protocol):
    """Decides, per (host name, address), whether a connection may be made."""

    def check(self, host: str, address: IPAddress) -> None:
        """Return if allowed; raise :class:`RefusedAddress` if not."""


class RefusedAddress(Exception):
    """An article fetch was refused before any connection was made."""

    def __init__(self, message: str, *, host: str = "", address: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.address = address


def parse_address(text: str) -> IPAddress | None:
    """The address in ``text`` (an IP literal, IPv6 zone and brackets allowed), or None."""
    text = text.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries, if it is one of the forms that do."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's (obfuscated form already decoded)
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str | None:
    """Why an article fetch may not connect to ``address``; None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = classify(inner)
            if reason is not None:
                return f"{reason}, as {address}"
    for network, reason in REFUSED_NETWORKS:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses article fetches may connect to."""

    allow_private: bool = False

    def refusal(self, address: IPAddress) -> str | None:
        return None if self.allow_private else classify(address)

    def check(self, host: str, address: IPAddress) -> None:
        reason = self.refusal(address)
        if reason is not None:
            where = str(address) if host == str(address) else f"{host} resolves to {address}"
            raise RefusedAddress(f"refused: {where}, a {reason} address", host=host,
                                 address=str(address))


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    seen: dict[str, None] = {}
    for _family, _type, _proto, _name, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address against the policy, connects to a checked address.

    httpcore hands the URL's host name on for TLS (SNI and certificate checks)
    and the Host header comes from the URL, so connecting by address changes
    nothing else. Refused addresses are never tried; when every address is
    refused, no connection attempt is made at all.
    """

    def __init__(
        self,
        *,
        policy: Policy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        literal = parse_address(host)
        names = [str(literal)] if literal is not None else await self._resolve(host, port)
        allowed: list[str] = []
        first_refusal: RefusedAddress | None = None
        for name in names:
            address = parse_address(name)
            if address is None:
                continue
            try:
                self._policy.check(host, address)
            except RefusedAddress as exc:
                first_refusal = first_refusal or exc
                continue
            allowed.append(str(address))
        if not allowed:
            if first_refusal is not None:
                raise first_refusal
            raise httpcore.ConnectError(f"{host} has no address")
        # A name with a mix of public and refused answers is used by its public ones only.
        last: Exception | None = None
        for allowed_address in allowed:
            try:
                return await self._inner.connect_tcp(
                    allowed_address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("refused: article fetches never use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, its connection pool built on a :class:`GuardedBackend`.

    httpx (0.28, pinned) has no public hook for the network backend, so the
    pool the parent built is replaced by an identical one that has it.
    Environment proxies are never used: a proxy would resolve and connect on
    our behalf, out of the guard's sight.
    """

    def __init__(
        self,
        *,
        policy: Policy,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=10),  # noqa: B008
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy=policy, resolver=resolver),
        )
