"""The shared client's bounds, one at a time: connect, read, total deadline, body cap, redirects."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from monitor.http import FetchError, Http
from tests.faults import hostile as h
from tests.faults.hostile import Hostile
from tests.origin import Origin, Route


async def timed(coro: object) -> tuple[float, str]:
    start = time.monotonic()
    try:
        await coro  # type: ignore[misc]
    except FetchError as e:
        return time.monotonic() - start, str(e)
    return time.monotonic() - start, "ok"


@pytest.fixture
def backlog_full() -> Iterator[int]:
    """A port whose accept queue is full: a connection attempt gets no answer at all."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    yield port
    filler.close()
    listener.close()


async def test_connect_that_gets_no_answer_times_out(backlog_full: int) -> None:
    async with Http(timeout=0.5) as http:
        took, reason = await timed(http.get(f"http://127.0.0.1:{backlog_full}/feed"))
    assert reason.startswith("timed out") and took < 1.0


async def test_trickled_body_is_cut_at_the_total_deadline(server: Hostile) -> None:
    # One byte a second never trips a read timeout; only the total deadline ends it.
    async with Http(timeout=1) as http:
        took, reason = await timed(http.get(server.url("/trickle")))
    assert reason == "timed out after 1s" and 0.9 <= took < 1.5


async def test_total_deadline_covers_every_redirect_hop() -> None:
    with Origin() as origin:
        for i in range(4):
            origin.routes[f"/{i}"] = Route(status=302, headers={"Location": f"/{i + 1}"}, delay=0.3)
        origin.routes["/4"] = Route(b"<rss/>")
        async with Http(timeout=0.8) as http:
            took, reason = await timed(http.get(origin.url("/0")))
    assert reason == "timed out after 0.8s" and took < 1.2


async def test_endless_body_stops_at_max_body(server: Hostile) -> None:
    async with Http(max_body=200_000) as http:
        _, reason = await timed(http.get(server.url("/endless")))
    assert reason == "response too large: more than 200000 bytes"


async def test_per_request_max_body_overrides_the_default(server: Hostile) -> None:
    async with Http() as http:
        _, reason = await timed(http.get(server.url("/endless"), max_body=50_000))
    assert reason == "response too large: more than 50000 bytes"


async def test_inflating_a_gzip_bomb_never_holds_much_more_than_the_cap(server: Hostile) -> None:
    # 100 MB of zeros gzip to ~100 KB: httpx would inflate each 64 KB network read at once
    # (tens of MB); the client inflates only as far as the cap.
    packer = zlib.compressobj(wbits=31)
    bomb = b"".join(packer.compress(b"\0" * 1_000_000) for _ in range(100)) + packer.flush()

    async def serve(conn: h.Conn) -> None:
        await conn.respond(200, bomb, {"Content-Encoding": "gzip"})

    server.routes["/bomb"] = serve
    async with Http(max_body=1_000_000) as http:
        tracemalloc.start()
        try:
            _, reason = await timed(http.get(server.url("/bomb")))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert reason == "response too large: more than 1000000 bytes"
    assert peak < 8_000_000


@pytest.mark.parametrize(
    "encoding, body",
    [
        ("gzip", gzip.compress(b"<rss>gzip</rss>")),
        ("x-gzip", gzip.compress(b"<rss>gzip</rss>")),
        ("gzip", gzip.compress(b"<rss>two ") + gzip.compress(b"members</rss>")),
        ("deflate", zlib.compress(b"<rss>zlib deflate</rss>")),
        ("deflate", zlib.compress(b"<rss>raw deflate</rss>")[2:-4]),
        ("identity", b"<rss>plain</rss>"),
        ("br", b"<rss>unknown codings pass through</rss>"),
    ],
)
async def test_compressed_bodies_are_decoded(server: Hostile, encoding: str, body: bytes) -> None:
    async def serve(conn: h.Conn) -> None:
        await conn.respond(200, body, {"Content-Encoding": encoding})

    server.routes["/z"] = serve
    async with Http() as http:
        resp = await http.get(server.url("/z"))
    assert resp.body.startswith(b"<rss>") and resp.body.endswith(b"</rss>")


async def test_corrupt_gzip_is_a_readable_failure(server: Hostile) -> None:
    async def serve(conn: h.Conn) -> None:
        await conn.respond(
            200, b"\x1f\x8b\x08\x00garbage-not-deflate", {"Content-Encoding": "gzip"}
        )

    server.routes["/bad-gzip"] = serve
    async with Http() as http:
        _, reason = await timed(http.get(server.url("/bad-gzip")))
    assert reason.startswith("could not decode the response")


async def test_five_redirects_are_followed_and_a_sixth_is_refused(server: Hostile) -> None:
    async with Http() as http:
        resp = await http.get(server.url("/hops/5"))
        _, reason = await timed(http.get(server.url("/hops/6")))
    assert resp.url == server.url("/healthy.xml") and b"Ceasefire" in resp.body
    assert reason.startswith("too many redirects (more than 5)")
    assert server.count("/healthy.xml") == 1  # the sixth hop's target is never requested


async def test_redirect_without_location_is_a_failure_not_a_loop() -> None:
    with Origin() as origin:
        origin.routes["/r"] = Route(status=302)
        async with Http() as http:
            _, reason = await timed(http.get(origin.url("/r")))
    assert reason == "HTTP 302 Found without a Location header"


async def test_conditional_get_survives_a_redirect() -> None:
    with Origin() as origin:
        origin.routes["/old"] = Route(status=301, headers={"Location": "/new"})
        origin.routes["/new"] = Route(b"<rss/>", etag='"v1"')
        state: dict = {}
        async with Http() as http:
            first = await http.get(origin.url("/old"), state=state)
            second = await http.get(origin.url("/old"), state=state)
    assert first.status == 200 and second.not_modified
    assert origin.gets("/new")[1].headers["if-none-match"] == '"v1"'


async def test_credentials_are_not_sent_to_another_origin() -> None:
    with Origin() as a, Origin() as b:
        a.routes["/feed"] = Route(status=302, headers={"Location": b.url("/feed")})
        b.routes["/feed"] = Route(b"<rss/>")
        async with Http(allow_private=True) as http:
            await http.get(a.url("/feed"), headers={"Authorization": "Bearer s3cret", "X-K": "v"})
    assert a.gets("/feed")[0].headers["authorization"] == "Bearer s3cret"
    sent = b.gets("/feed")[0].headers
    assert "authorization" not in sent and sent["x-k"] == "v"


async def test_a_busy_host_does_not_starve_others_of_global_slots() -> None:
    # Requests queued for a busy host wait for the host's slot before taking a global one.
    with Origin() as busy, Origin(host="127.0.0.2") as idle:
        busy.routes["/slow"] = Route(b"ok", delay=0.5)
        idle.routes["/fast"] = Route(b"ok")
        async with Http(per_host=2, max_connections=3) as http:
            jams = [asyncio.create_task(http.get(busy.url("/slow"))) for _ in range(6)]
            await asyncio.sleep(0.05)
            took, reason = await timed(http.get(idle.url("/fast")))
            await asyncio.gather(*jams)
    assert reason == "ok" and took < 0.4


async def test_per_host_slots_are_dropped_once_idle() -> None:
    # Months of article links bring new hosts without end; their slots must not pile up.
    with Origin() as a, Origin(host="127.0.0.2") as b:
        a.routes["/x"] = b.routes["/x"] = Route(b"ok")
        async with Http() as http:
            await asyncio.gather(*(http.get(o.url("/x")) for o in (a, b, a, b)))
            assert http._hosts == {}
