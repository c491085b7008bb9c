"""Content cannot steer the monitor to private addresses; configured URLs are trusted as given."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from monitor import netguard
from monitor.http import FetchError, Http
from monitor.netguard import BlockedAddress, BlockedURL, address_problem, check_public, check_url
from tests.faults.hostile import Tripwire
from tests.origin import Origin, Route


@pytest.fixture(autouse=True)
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tripwire]:
    """A guard regression must fail a test, never send a packet off this machine."""
    wire = Tripwire()
    wire.install(monkeypatch)
    yield wire
    assert wire.attempts == [], f"something tried to leave loopback: {wire.attempts}"


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Answer getaddrinfo for made-up names; real lookups only for literal addresses."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in names:
            asked.append(name)
            answers = names[name]
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
            family = socket.AF_INET6 if ":" in answer else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (answer, port or 0))]
        if netguard.literal_ip(name) is None:
            raise socket.gaierror(socket.EAI_NONAME, "no such test host")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# --- the address rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.255.254", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("fec0::1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("169.254.170.2", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("100.127.255.254", "a carrier-grade NAT address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("0.1.2.3", "a private address"),
        ("255.255.255.255", "a private address"),
        ("192.0.2.7", "a private address"),
        ("240.0.0.1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address (as IPv4 127.0.0.1)"),
        ("::ffff:a9fe:a9fe", "a cloud metadata address (as IPv4 169.254.169.254)"),
        ("::ffff:10.0.0.1", "a private address (as IPv4 10.0.0.1)"),
        ("::127.0.0.1", "a loopback address (as IPv4 127.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address (as IPv4 169.254.169.254)"),
        ("2002:7f00:1::", "a loopback address (as IPv4 127.0.0.1)"),
        ("2002:c0a8:101::1", "a private address (as IPv4 192.168.1.1)"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, why: str) -> None:
    assert address_problem(address) == why


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "100.128.0.1",
     "172.32.0.1", "169.255.0.1", "2002:808:808::1", "64:ff9b::808:808"],
)  # fmt: skip
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "127.1 is a loopback address"),
        ("http://2130706433/", "2130706433 is a loopback address"),
        ("http://0x7f.0.0.1/", "0x7f.0.0.1 is a loopback address"),
        ("http://0251.0376.0251.0376/", "invalid URL"),  # httpx refuses octal forms outright
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("http://[::ffff:169.254.169.254]/", "a cloud metadata address (as IPv4 169.254.169.254)"),
        ("http://[fe80::1%25eth0]/", "a link-local address"),
        ("https://user:pw@10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://a@b@192.168.0.1/", "192.168.0.1 is a private address"),
        ("file:///etc/passwd", "refusing a file: URL"),
        ("gopher://127.0.0.1:6379/_INFO", "refusing a gopher: URL"),
        ("ftp://example.org/x", "refusing a ftp: URL"),
        ("//example.org/x", "refusing a URL without a scheme"),
        ("http:///nohost", "no host"),
    ],
)
def test_check_url_refuses_literal_private_hosts_and_other_schemes(url: str, reason: str) -> None:
    with pytest.raises(BlockedURL, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_url(url)


def test_check_url_lets_hostnames_through_to_the_connect_time_check() -> None:
    assert check_url("https://www.nato.int/feed.xml") == "www.nato.int"


def test_check_public_refuses_a_name_with_any_private_address() -> None:
    def resolve(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, 1, 6, "", ("93.184.216.34", 0)),
                (socket.AF_INET, 1, 6, "", ("10.0.0.5", 0))]  # fmt: skip

    with pytest.raises(BlockedAddress, match="intranet.test resolves to 10.0.0.5, a private"):
        check_public("http://intranet.test/", resolve=resolve)


def test_check_public_accepts_a_name_with_only_public_addresses() -> None:
    def resolve(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6, 1, 6, "", ("2606:4700::1111", 0, 0, 0))]

    assert check_public("https://news.test/a", resolve=resolve) is None


def test_check_public_refuses_a_name_that_does_not_resolve() -> None:
    def resolve(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(BlockedURL, match="cannot resolve nowhere.test"):
        check_public("http://nowhere.test/", resolve=resolve)


def test_check_public_needs_no_dns_for_literal_addresses() -> None:
    def resolve(*a: Any, **kw: Any) -> list[tuple[Any, ...]]:
        raise AssertionError("resolved a literal address")

    assert check_public("http://8.8.8.8/", resolve=resolve) is None
    with pytest.raises(BlockedAddress):
        check_public("http://169.254.169.254/latest/", resolve=resolve)


# --- the client: trusted, untrusted, redirects ----------------------------------------------


@pytest.fixture
def origin() -> Iterator[Origin]:
    with Origin() as o:
        o.routes["/feed"] = Route(b"<rss/>")
        yield o


async def test_configured_url_on_loopback_is_trusted(origin: Origin) -> None:
    async with Http() as http:
        assert (await http.get(origin.url("/feed"))).body == b"<rss/>"


async def test_url_from_content_on_loopback_is_refused_before_connecting(origin: Origin) -> None:
    async with Http() as http:
        with pytest.raises(
            FetchError,
            match=r"^refused http://127\.0\.0\.1:\d+/feed: 127\.0\.0\.1 is a loopback address$",
        ):
            await http.get(origin.url("/feed"), trusted=False)
    assert origin.gets() == []


async def test_allow_private_lets_content_urls_reach_private_addresses(origin: Origin) -> None:
    async with Http(allow_private=True) as http:
        assert (await http.get(origin.url("/feed"), trusted=False)).body == b"<rss/>"


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/meta-data/",
     "http://10.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://0/"],
)  # fmt: skip
async def test_metadata_and_private_urls_from_content_never_open_a_socket(
    url: str, tripwire: Tripwire
) -> None:
    async with Http() as http:
        with pytest.raises(FetchError, match="^refused "):
            await http.get(url, trusted=False)


async def test_a_name_resolving_to_metadata_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = fake_dns(monkeypatch, {"metadata.test": ["169.254.169.254"]})
    async with Http() as http:
        with pytest.raises(FetchError, match="metadata.test resolves to 169.254.169.254, a cloud"):
            await http.get("http://metadata.test/latest/meta-data/", trusted=False)
    assert asked == ["metadata.test"]


async def test_localhost_from_content_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"localhost": ["127.0.0.1"]})
    async with Http() as http:
        with pytest.raises(FetchError, match="localhost resolves to 127.0.0.1, a loopback"):
            await http.get("http://localhost:9/", trusted=False)


async def test_the_checked_address_is_the_one_connected_to(monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS rebinding: the first answer passes the check, later ones would point elsewhere. The
    # connection must go to the first answer; a second lookup would land on 169.254.169.254.
    # 127.0.0.2 stands in for a public address (nothing public may be contacted from tests).
    real = netguard.address_problem
    monkeypatch.setattr(
        netguard, "address_problem", lambda a: None if str(a) == "127.0.0.2" else real(a)
    )
    asked = fake_dns(monkeypatch, {"rebind.test": ["127.0.0.2", "169.254.169.254"]})
    with Origin(host="127.0.0.2") as public:
        public.routes["/a"] = Route(b"public")
        async with Http() as http:
            resp = await http.get(f"http://rebind.test:{public.port}/a", trusted=False)
    assert resp.body == b"public" and asked == ["rebind.test"]


async def test_configured_feed_redirecting_to_metadata_is_refused(origin: Origin) -> None:
    origin.routes["/feed"] = Route(status=302, headers={"Location": "http://169.254.169.254/x"})
    async with Http() as http:
        with pytest.raises(
            FetchError, match="refused redirect from .* to http://169.254.169.254/x"
        ):
            await http.get(origin.url("/feed"))


async def test_configured_feed_may_redirect_within_its_own_origin(origin: Origin) -> None:
    origin.routes["/old"] = Route(status=301, headers={"Location": "/feed"})
    async with Http() as http:
        assert (await http.get(origin.url("/old"))).body == b"<rss/>"


async def test_redirect_to_another_loopback_port_is_refused_unless_allowed(origin: Origin) -> None:
    with Origin() as other:
        other.routes["/admin"] = Route(b"admin")
        origin.routes["/feed"] = Route(status=302, headers={"Location": other.url("/admin")})
        async with Http() as http:
            with pytest.raises(FetchError, match="127.0.0.1 is a loopback address"):
                await http.get(origin.url("/feed"))
        assert other.gets() == []
        async with Http(allow_private=True) as http:
            assert (await http.get(origin.url("/feed"))).body == b"admin"


async def test_untrusted_redirect_hops_are_each_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Content URL on a "public" host (127.0.0.2, as above) redirecting to its own loopback
    # neighbour: an untrusted request has no home origin, so the hop is checked too.
    real = netguard.address_problem
    monkeypatch.setattr(
        netguard, "address_problem", lambda a: None if str(a) == "127.0.0.2" else real(a)
    )
    with Origin(host="127.0.0.2") as public, Origin() as private:
        private.routes["/secret"] = Route(b"secret")
        public.routes["/a"] = Route(status=307, headers={"Location": private.url("/secret")})
        async with Http() as http:
            with pytest.raises(FetchError, match="refused redirect .*127.0.0.1 is a loopback"):
                await http.get(public.url("/a"), trusted=False)
        assert len(public.gets("/a")) == 1 and private.gets() == []


async def test_replay_transport_gets_the_literal_address_check_too() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"ok")

    async with Http(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FetchError, match="a private address"):
            await http.get("http://192.168.1.1/router", trusted=False)
        assert (await http.get("https://news.example/a", trusted=False)).body == b"ok"
    assert seen == ["https://news.example/a"]


def test_tripwire_really_stops_off_loopback_connections(tripwire: Tripwire) -> None:
    sock = socket.socket()
    try:
        with pytest.raises(ConnectionRefusedError, match="tripwire"):
            sock.connect(("10.255.255.1", 80))
    finally:
        sock.close()
    assert tripwire.attempts == [("10.255.255.1", 80)]
    tripwire.attempts.clear()
