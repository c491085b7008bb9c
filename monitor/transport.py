"""I/O: the wire under the shared httpx client — HTTP/1.1 over asyncio sockets, guard included.

httpx stays the client (URLs, headers, exceptions, the transport seam respx and the replays
use); this replaces only its default transport, httpcore over anyio, which spends about 1 ms
of CPU per request on locks, pool scans and backend dispatch. A pass over a few hundred feeds
that mostly answer 304 is made of little else. Here httptools (llhttp, in C) reads the answers,
a request's head is written and checked here, an asyncio.Protocol owns the socket, and a small
keep-alive pool keeps recent connections.

With `guard=True` every connection goes to addresses resolved and checked first (see
`netguard`): the address connected to is the one checked, so DNS rebinding can't slip a
private address in between.

Why keep it (bench/bench_transport.py, 2026-12-06, 2 vCPUs shared with other work, load
~10, so absolute figures are inflated; medians of 3): CPU per conditional GET answered 304,
200 feeds on their own loopback addresses, against httpcore's pool under httpx with an
`httpcore.AsyncNetworkBackend` that does the same connect-time address check:

    transport                    one at a time (daemon)   32 at a time (pass)
    this module                        1,500 µs                1,133 µs
    httpcore + guarded backend         4,959 µs                3,467 µs

It saves about 70% of the HTTP work of a request. HTTP was 45% (0.77 ms) of the daemon's
1.7 ms per conditional poll; over httpcore it would be about 3.3 times that, taking the
daemon to about 3.5 ms per poll. So this module saves about half the daemon's CPU per
poll, past the quarter that justifies keeping it.

Again on 2026-12-07, with httptools reading the answers and both on the monitor's event loop
(uvloop's, monitor.eventloop), a quiet VM, medians of 3:

    transport                    one at a time (daemon)   32 at a time (pass)
    this module                          585 µs                  509 µs
    httpcore + guarded backend         2,206 µs                1,411 µs

that is 73% of the HTTP work saved, 1.6 ms of a poll that now costs the daemon about 0.93 ms.

Answers were read with h11 until 2026-12-07; httptools took its place as the part of a poll
that cost most and did least (bench/bench_poll_parts.py --pace 1 --batch 33 poll, 1,000
polls of 2,000 feeds, two rounds of alternating runs, uvloop in both): 1,074–1,247 µs of CPU
per poll with h11, 915–1,056 µs with httptools.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator

import httptools
import httpx

from monitor.netguard import check_addresses, literal_ip

_PORTS = {"http": 80, "https": 443}
_HIGH_WATER = 1 << 20  # bytes buffered before the socket stops being read
_IDEMPOTENT = (b"GET", b"HEAD")
_FRAMING = (b"content-length", b"transfer-encoding")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~20 ms: only when a first https connection needs it.
    return httpx.create_ssl_context()


class _Stale(Exception):
    """A kept-alive connection the server closed before answering: retry on a fresh one."""


class _Socket(asyncio.Protocol):
    """Bytes in from the event loop, handed to whoever awaits `read`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _expire(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(TimeoutError())

    async def read(self, timeout: float | None) -> bytes:
        """What has arrived, waiting up to `timeout` for something; b"" at the end."""
        if not self.chunks and not self.eof:
            loop = asyncio.get_running_loop()
            self.waiter = loop.create_future()
            timer = loop.call_later(timeout, self._expire) if timeout is not None else None
            try:
                await self.waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
        if not self.chunks:
            if self.error is not None:
                raise self.error
            return b""
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


# What an answer's status line and headers may take before they end, as h11 allowed.
_MAX_HEAD = 16 * 1024
_NO_BODY = frozenset((204, 304))
# RFC 9110's token and field-value, and a request target without spaces or controls: what
# h11 checked before writing a request, so that a CR or LF in a configured header (or a
# URL) can't write a second request or header of its own.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+\Z")
_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*\Z")
_TARGET = re.compile(rb"[^\x00-\x20\x7f]+\Z")


def _request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A request's head on the wire; refuses what would change its meaning there."""
    if not _TOKEN.match(method):
        raise httpx.LocalProtocolError(f"illegal request method {method!r}")
    if not _TARGET.match(target):
        raise httpx.LocalProtocolError(f"illegal request target {target!r}")
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not _TOKEN.match(name):
            raise httpx.LocalProtocolError(f"illegal header name {name!r}")
        if not _VALUE.match(value):
            raise httpx.LocalProtocolError(f"illegal header value {value!r}")
        lines += (name, b": ", value.strip(b" \t"), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class _Connection:
    """One connection, and the answer being read on it (httptools' parser calls the on_*).

    httptools is llhttp, Node.js's HTTP parser, in C: it reads a 304's head in about 5 µs of
    CPU, where h11 took about 85 µs (all of it Python), a tenth of a daemon's poll.
    """

    def __init__(self, key: tuple[str, str, int], sock: _Socket, transport: asyncio.Transport):
        self.key = key
        self.sock = sock
        self.transport = transport
        self.idle_since = 0.0
        self.parser: httptools.HttpResponseParser | None = None
        self.reusable = False  # the last answer ended cleanly and the server keeps the line

    def usable(self, now: float, expiry: float) -> bool:
        return (
            self.reusable
            and not self.transport.is_closing()
            and not self.sock.eof
            and not self.sock.chunks  # bytes nobody asked for: the stream is out of step
            and now - self.idle_since < expiry
        )

    def close(self) -> None:
        self.reusable = False
        self.parser = None  # it refers back to this connection
        self.transport.abort()

    def start(self, method: bytes) -> None:
        """Before a request is written: a parser and a blank answer."""
        self.parser = httptools.HttpResponseParser(self)
        # Lines ended by LF alone, as some servers still send them: h11 read them too.
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self.head_only = method == b"HEAD"
        self.received = False  # any byte of this answer
        self.head_bytes = 0
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.version = "1.1"
        self.head = False  # the final answer's head is parsed
        self.interim = False  # a 1xx being parsed: skipped, the final answer follows
        self.done = False  # the final answer is complete
        self.extra = False  # bytes after it: the connection is out of step
        self.keep_alive = False
        self.body: list[bytes] = []
        self.reusable = False

    # httptools' callbacks, in the order it makes them.

    def on_message_begin(self) -> None:
        if self.done:
            self.extra = True

    def on_status(self, reason: bytes) -> None:
        if not self.extra:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.extra:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.extra or self.parser is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True
            return
        self.status, self.version, self.head = status, self.parser.get_http_version(), True
        if self.head_only:  # no body follows, whatever the head says
            self.done = True

    def on_body(self, data: bytes) -> None:
        if not (self.extra or self.interim or self.head_only):
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.extra or self.parser is None:
            return
        if self.interim:
            self.interim, self.reason, self.headers = False, b"", []
            return
        self.done = True
        self.keep_alive = self.parser.should_keep_alive() and not self.head_only

    async def _more(self, timeout: float | None) -> bool:
        """Parse what arrives next; False once the server has closed the connection."""
        try:
            data = await self.sock.read(timeout)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no data for {timeout:g}s") from None
        except OSError as e:
            if not self.received:
                raise _Stale from e
            raise httpx.ReadError(str(e) or type(e).__name__) from e
        if not data:
            if not self.received:
                raise _Stale
            return False
        self.received = True
        assert self.parser is not None
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
            if not self.done:
                where = (
                    "a protocol upgrade nobody asked for"
                    if isinstance(e, httptools.HttpParserUpgrade)
                    else "illegal status line" if not (self.reason or self.headers)
                    else "illegal header" if not self.head
                    else "broken body"
                )  # fmt: skip
                raise httpx.RemoteProtocolError(f"{where}: {e}" if str(e) else where) from e
            self.extra = True  # garbage after a complete answer: only this connection is spoilt
        if not self.head:
            self.head_bytes += len(data)
            if self.head_bytes > _MAX_HEAD:
                raise httpx.RemoteProtocolError(f"answer's head longer than {_MAX_HEAD} bytes")
        return True

    def _ends_at_close(self) -> bool:
        """Whether the answer's body is delimited by the connection's end (no length, no
        chunking): asked only when the connection ends first, not of every answer."""
        names = {name.lower() for name, _ in self.headers}
        return self.status not in _NO_BODY and names.isdisjoint(_FRAMING)

    async def read_head(self, timeout: float | None) -> None:
        """Until the final answer's status and headers are in (1xx answers skipped)."""
        while not self.head:
            if not await self._more(timeout):
                raise httpx.RemoteProtocolError("server closed the connection mid-answer")
        if self.status == 101:  # the monitor never asks for one; the line is no longer HTTP
            raise httpx.RemoteProtocolError("a protocol upgrade nobody asked for")

    async def read_body(self, timeout: float | None) -> bytes | None:
        """The body's next bytes; None at its end."""
        while not self.body:
            if self.done:
                self.reusable = self.keep_alive and not self.extra
                return None
            if not await self._more(timeout):
                if not self._ends_at_close():
                    raise httpx.RemoteProtocolError("server closed the connection mid-answer")
                self.done = True  # a body delimited by the end of the connection
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        return data


class Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for an httpx.AsyncClient; `guard=True` connects to public addresses only."""

    def __init__(self, *, guard: bool = False, max_idle: int = 8, idle_expiry: float = 5.0) -> None:
        self.guard = guard
        self.max_idle = max_idle
        self.idle_expiry = idle_expiry
        # Few idle connections: sources sit on many hosts, each polled minutes apart.
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._idle_count = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme not in _PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        if not request.url.host:
            raise httpx.UnsupportedProtocol("URL has no host", request=request)
        key = (scheme, request.url.host, request.url.port or _PORTS[scheme])
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        for _ in range(3):
            conn = self._take_idle(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, timeouts.get("connect"), request)
            try:
                return await self._exchange(conn, request, body, timeouts.get("read"))
            except _Stale as e:
                conn.close()
                if reused and request.method.encode() in _IDEMPOTENT:
                    continue
                if isinstance(e.__cause__, OSError):
                    raise httpx.ReadError(str(e.__cause__), request=request) from e.__cause__
                raise httpx.RemoteProtocolError(
                    "server disconnected without sending a response", request=request
                ) from None
            except BaseException:
                conn.close()
                raise
        raise httpx.RemoteProtocolError("server keeps closing connections", request=request)

    async def _exchange(
        self, conn: _Connection, request: httpx.Request, body: bytes, timeout: float | None
    ) -> httpx.Response:
        method = request.method.encode()
        headers = request.headers.raw
        if body or any(name.lower() == b"transfer-encoding" for name, _ in headers):
            # The whole body is in hand (`aread`): sent with its length, never chunked.
            headers = [(k, v) for k, v in headers if k.lower() not in _FRAMING]
            headers.append((b"Content-Length", str(len(body)).encode()))
        try:
            head = _request_head(method, request.url.raw_path, headers)
        except httpx.LocalProtocolError as e:
            e.request = request
            raise
        conn.start(method)
        conn.transport.write(head + body)
        await conn.read_head(timeout)
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, conn, timeout),
            extensions={
                "http_version": b"HTTP/" + conn.version.encode(),
                "reason_phrase": conn.reason,
            },
        )

    async def _connect(
        self, key: tuple[str, str, int], timeout: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = key
        tls = _tls_context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._addresses(host, port) if self.guard else [host]
                error: OSError | None = None
                for address in addresses:
                    try:
                        transport, sock = await loop.create_connection(
                            _Socket, address, port, ssl=tls,
                            server_hostname=host if tls is not None else None,
                        )  # fmt: skip
                    except OSError as e:
                        error = e
                        continue
                    return _Connection(key, sock, transport)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting took over {timeout:g}s", request=request
            ) from None
        if isinstance(error, socket.gaierror):
            # Its errno is a resolver code (-2), which os.strerror calls "Unknown error".
            raise httpx.ConnectError(
                f"cannot resolve {host}: {error.strerror or error}", request=request
            ) from None
        if error is not None and error.errno and not isinstance(error, ssl.SSLError):
            # asyncio words it "Connect call failed (addr)"; the reason is in the errno.
            error = OSError(error.errno, os.strerror(error.errno))
        raise httpx.ConnectError(str(error), request=request) from error

    @staticmethod
    async def _addresses(host: str, port: int) -> list[str]:
        """`host`'s addresses, each checked to be public (raises BlockedAddress otherwise)."""
        ip = literal_ip(host)
        if ip is not None:
            addresses = [str(ip)]
        else:
            try:
                # The standard library's resolver in a thread, as asyncio's loop asks it: the
                # one netguard.check_url asks too (uvloop's loop would ask libuv's).
                infos = await asyncio.to_thread(
                    socket.getaddrinfo, host, port, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError) as e:
                raise httpx.ConnectError(f"cannot resolve {host}: {e}") from None
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        check_addresses(host, addresses)
        return addresses

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        found = None
        while idle and found is None:
            conn = idle.pop()
            self._idle_count -= 1
            if conn.usable(now, self.idle_expiry):
                found = conn
            else:
                conn.close()
        if idle is not None and not idle:
            del self._idle[key]  # months of links from content bring many one-off hosts
        return found

    def _release(self, conn: _Connection) -> None:
        """Back to the pool once its answer was read to the end, if both sides allow."""
        if self._closed or not conn.reusable:
            conn.close()
            return
        conn.parser = None  # a new one for the next answer; it refers back to the connection
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
        self._idle_count += 1
        if self._idle_count > self.max_idle:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        key, conns = min(
            ((k, v) for k, v in self._idle.items() if v), key=lambda kv: kv[1][0].idle_since
        )
        conns.pop(0).close()
        self._idle_count -= 1
        if not conns:
            del self._idle[key]

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0


class _Body(httpx.AsyncByteStream):
    """A response body as it arrives; the connection goes back to the pool at its end."""

    def __init__(self, owner: Transport, conn: _Connection, timeout: float | None) -> None:
        self.owner = owner
        self.conn: _Connection | None = conn
        self.timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self.conn
        if conn is None:
            return
        try:
            while (data := await conn.read_body(self.timeout)) is not None:
                yield data
            self.conn = None
            self.owner._release(conn)
        except BaseException:
            if self.conn is not None:
                self.conn = None
                conn.close()
            raise

    async def aclose(self) -> None:
        # Closed before its end (a size cap, a redirect's unread body): the rest of the
        # answer is still on the wire, so this connection can't carry another request.
        if self.conn is not None:
            self.conn.close()
            self.conn = None
