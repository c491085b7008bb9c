"""Refuse destinations that would turn the monitor against its own host or network (SSRF)."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's signature

SCHEMES = ("http", "https")

# Cloud instance metadata services: AWS/GCP/Azure/OpenStack, AWS over IPv6, AWS ECS task
# metadata, Alibaba. They hold credentials, so they are named in the reason.
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed as private by some
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# inet_aton forms getaddrinfo accepts as IPv4 (`127.1`, `0x7f.0.0.1`, `2130706433`).
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


class BlockedURL(Exception):
    """A URL refused before any connection is made; `str()` says why, for `monitor sources`."""


class BlockedAddress(BlockedURL):
    """A host that resolved to an address the monitor must not reach."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client the tunnel delivers to
    if ip in IPV4_COMPATIBLE and int(ip) > 1:  # `::` and `::1` are themselves, not IPv4
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(address: str | IPAddress) -> str | None:
    """Why the monitor must not connect to `address` ("a loopback address"), or None if public."""
    ip = address if isinstance(address, IPAddress) else _parse_ip(address)
    if ip is None:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            why = address_problem(inner)
            return f"{why} (as IPv4 {inner})" if why else None
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip in CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private or ip in SITE_LOCAL:
        return "a private address"
    if not ip.is_global:  # documentation, benchmarking, reserved, broadcast...
        return "a reserved, non-public address"
    return None


def check_ip(address: str | IPAddress, host: str | None = None) -> None:
    """Raise BlockedAddress unless `address` is a public unicast address."""
    why = address_problem(address)
    if why is None:
        return
    if host and literal_ip(host) is None:
        raise BlockedAddress(f"{host} resolves to {address}, {why}")
    raise BlockedAddress(f"{host or address} is {why}")


def _parse_ip(text: str) -> IPAddress | None:
    text = unquote(text).strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(text) and any(c.isdigit() for c in text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names without DNS: `127.0.0.1`, `[::1]`, and inet_aton forms (`127.1`)."""
    return _parse_ip(host)


def check_url(url: str) -> str:
    """Refuse a non-http(s) URL or one whose host is a literal non-public address; no DNS.

    Returns the host, as httpx will connect to it (httpx's parser, not urllib's: the two
    disagree on hostile URLs such as `http://a@b@127.0.0.1/`, and httpx's is the one used).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise BlockedURL(f"invalid URL: {e}") from None
    if parsed.scheme not in SCHEMES:
        what = f"a {parsed.scheme}: URL" if parsed.scheme else "a URL without a scheme"
        raise BlockedURL(f"refusing {what} (only http and https are fetched)")
    host = parsed.host
    if not host:
        raise BlockedURL("URL has no host")
    ip = literal_ip(host)
    if ip is not None:
        check_ip(ip, host)
    return host


def check_public(url: str, *, resolve: Resolver | None = None) -> None:
    """Raise BlockedURL unless `url` is http(s) and every address its host resolves to is public.

    Blocking (it resolves the host): call it off the event loop (`asyncio.to_thread`). Every
    address must be public, not just one: the connection may use any of them.
    """
    host = check_url(url)
    if literal_ip(host) is not None:
        return
    check_addresses(host, _resolve(host, resolve or socket.getaddrinfo))


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        check_ip(address, host)


def _resolve(host: str, resolve: Resolver, port: int = 0) -> list[str]:
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise BlockedURL(f"cannot resolve {host}: {e}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
