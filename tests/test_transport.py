"""monitor.transport on real sockets: keep-alive, framing, stale connections, errors, the guard."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from monitor.netguard import BlockedAddress
from monitor.transport import Transport, _tls_context

Handler = Callable[["Origin", asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Origin:
    """A scripted HTTP server on 127.0.0.1; `handler(origin, reader, writer, connection_number)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def head(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        return head


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Origin]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Origin:
        origin = Origin(handler)
        server = await asyncio.start_server(origin._serve, "127.0.0.1", 0)
        servers.append(server)
        origin.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return origin

    yield start
    for server in servers:
        server.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def answering(answer: bytes) -> Handler:
    """A keep-alive handler: every request on the connection gets `answer`."""

    async def handler(origin: Origin, reader, writer, n) -> None:
        while True:
            await origin.head(reader)
            writer.write(answer)
            await writer.drain()

    return handler


async def test_keep_alive_reuses_one_connection_for_requests_in_a_row(serve) -> None:
    origin = await serve(answering(ok(b"hello")))
    async with httpx.AsyncClient(transport=Transport()) as client:
        for _ in range(3):
            assert (await client.get(origin.url + "/feed")).content == b"hello"
    assert origin.connections == 1
    assert len(origin.requests) == 3
    assert origin.requests[0].startswith(b"GET /feed HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in origin.requests[0]


async def test_a_kept_connection_the_server_closed_is_replaced_without_an_error(serve) -> None:
    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(ok(b"answer %d" % n))  # says keep-alive, then hangs up anyway
        await writer.drain()

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        assert (await client.get(origin.url)).content == b"answer 1"
        await asyncio.sleep(0.05)
        assert (await client.get(origin.url)).content == b"answer 2"
    assert origin.connections == 2


async def test_a_post_is_not_sent_twice_when_a_kept_connection_turns_out_closed(serve) -> None:
    async def handler(origin, reader, writer, n):
        head = await origin.head(reader)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(ok(b"ok"))
        await writer.drain()

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        await client.post(origin.url, content=b"first")
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await client.post(origin.url, content=b"second")
    assert origin.connections == 1


async def test_chunked_and_close_delimited_bodies_are_read_to_the_end(serve) -> None:
    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"<rss>", b"<item/>" * 100, b"</rss>"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<feed/>")
            await writer.drain()
            writer.close()

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        chunked = await client.get(origin.url)
        assert chunked.content == b"<rss>" + b"<item/>" * 100 + b"</rss>"
        closed = await client.get(origin.url)
        assert closed.content == b"<feed/>"
        assert closed.http_version == "HTTP/1.0"


async def test_a_body_larger_than_the_read_buffer_arrives_whole(serve) -> None:
    big = bytes(range(256)) * 24_000  # 6 MB: reading pauses and resumes on the way

    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(ok(big))
        await writer.drain()

    origin = await serve(handler)
    got = b""
    client = httpx.AsyncClient(transport=Transport())
    async with client, client.stream("GET", origin.url) as resp:
        async for chunk in resp.aiter_raw():
            got += chunk
            await asyncio.sleep(0)  # a slow reader
    assert got == big


async def test_a_body_closed_before_its_end_does_not_go_back_to_the_pool(serve) -> None:
    origin = await serve(answering(ok(b"x" * 200_000)))
    async with httpx.AsyncClient(transport=Transport()) as client:
        async with client.stream("GET", origin.url) as resp:
            async for _ in resp.aiter_raw():
                break
        assert (await client.get(origin.url)).content == b"x" * 200_000
    assert origin.connections == 2


async def test_304_and_interim_answers_have_no_body(serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    origin = await serve(answering(interim + b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n'))
    async with httpx.AsyncClient(transport=Transport()) as client:
        for _ in range(2):
            resp = await client.get(origin.url, headers={"If-None-Match": '"v1"'})
            assert (resp.status_code, resp.content, resp.headers["etag"]) == (304, b"", '"v1"')
    assert origin.connections == 1


async def test_an_answer_that_stops_coming_is_a_read_timeout(serve) -> None:
    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(5)

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport(), timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(origin.url)


async def test_garbage_instead_of_http_is_a_protocol_error(serve) -> None:
    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(origin.url)


async def test_a_broken_header_or_body_is_named_in_the_error(serve) -> None:
    answers = iter([
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ])  # fmt: skip

    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(next(answers))
        await writer.drain()
        writer.close()

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        for expected in (
            "illegal header", "broken body", "mid-answer", "head longer than", "upgrade nobody",
        ):  # fmt: skip
            with pytest.raises(httpx.RemoteProtocolError, match=expected):
                await client.get(origin.url)


async def test_lines_ended_by_lf_alone_are_read(serve) -> None:
    origin = await serve(answering(b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello"))
    async with httpx.AsyncClient(transport=Transport()) as client:
        assert (await client.get(origin.url)).content == b"hello"


async def test_bytes_after_a_complete_answer_spoil_only_that_connection(serve) -> None:
    async def handler(origin, reader, writer, n):
        while True:
            await origin.head(reader)
            writer.write(ok(b"answer %d" % n) + b"\x00garbage after the answer")
            await writer.drain()

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        assert (await client.get(origin.url)).content == b"answer 1"
        assert (await client.get(origin.url)).content == b"answer 2"
    assert origin.connections == 2


@pytest.mark.parametrize(
    "headers",
    [{"X-Ok": "a\r\nInjected: 1"}, {"X-Ok": "a\nInjected: 1"}, {"bad name": "v"}],
)
async def test_a_header_that_would_change_the_request_is_refused_unsent(serve, headers) -> None:
    origin = await serve(answering(ok(b"hello")))
    async with httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.LocalProtocolError, match="illegal header") as refused:
            await client.get(origin.url, headers=headers)
    assert refused.value.request.url == origin.url
    assert origin.requests == []


async def test_a_streamed_body_is_sent_with_its_length(serve) -> None:
    seen: list[bytes] = []

    async def handler(origin, reader, writer, n):
        head = await origin.head(reader)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        seen.append(await reader.readexactly(length))
        writer.write(ok(b"ok"))
        await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        yield b"first "
        yield b"second"

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport()) as client:
        assert (await client.post(origin.url, content=parts())).content == b"ok"
    assert seen == [b"first second"]
    assert b"transfer-encoding" not in origin.requests[0].lower()


async def test_a_refused_connection_says_so() -> None:
    async with httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.ConnectError, match="refused"):
            await client.get("http://127.0.0.1:9/")


async def test_a_host_that_does_not_resolve_is_named(monkeypatch) -> None:
    async def unresolvable(self, *args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", unresolvable)
    async with httpx.AsyncClient(transport=Transport()) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("http://www.nato.example/feed")
    assert str(caught.value) == "cannot resolve www.nato.example: Name or service not known"


async def test_the_guard_refuses_a_private_address_before_connecting(serve) -> None:
    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(ok(b"secret"))

    origin = await serve(handler)
    async with httpx.AsyncClient(transport=Transport(guard=True)) as client:
        with pytest.raises(BlockedAddress, match="loopback"):
            await client.get(origin.url)
        with pytest.raises(BlockedAddress, match="localhost resolves to"):
            await client.get(origin.url.replace("127.0.0.1", "localhost"))
    assert origin.connections == 0


async def test_idle_connections_are_capped_and_expire(serve) -> None:
    origins = [await serve(answering(ok(b"."))) for _ in range(3)]
    transport = Transport(max_idle=2, idle_expiry=0.2)
    async with httpx.AsyncClient(transport=transport) as client:
        for origin in origins:
            await client.get(origin.url)
        assert sum(len(v) for v in transport._idle.values()) == 2
        await client.get(origins[2].url)  # still kept: reused
        await asyncio.sleep(0.3)
        await client.get(origins[2].url)  # expired: a new connection
        assert all(transport._idle.values())  # no host left behind with an empty list
    assert [o.connections for o in origins] == [1, 1, 2]


async def test_https_verifies_the_certificate_and_the_host_name(
    serve, tls_cert, monkeypatch
) -> None:
    async def handler(origin, reader, writer, n):
        await origin.head(reader)
        writer.write(ok(b"over tls"))
        await writer.drain()

    origin = Origin(handler)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Also on 127.0.0.2, an address the certificate does not name.
    server = await asyncio.start_server(
        origin._serve, ["127.0.0.1", "127.0.0.2"], port, ssl=tls_cert.server_context()
    )
    try:
        _tls_context.cache_clear()
        async with httpx.AsyncClient(transport=Transport()) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://localhost:{port}/")
        # Trusted through SSL_CERT_FILE, as httpx's own transport allows.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert.cert_file))
        _tls_context.cache_clear()
        async with httpx.AsyncClient(transport=Transport()) as client:
            assert (await client.get(f"https://localhost:{port}/")).content == b"over tls"
            with pytest.raises(httpx.ConnectError, match="match|mismatch"):
                await client.get(f"https://127.0.0.2:{port}/")  # not a name on the certificate
    finally:
        _tls_context.cache_clear()
        server.close()
