"""A hostile HTTP server on 127.0.0.1 that hangs, trickles, resets, loops and floods on demand.

Written on raw asyncio streams rather than http.server because the faults live below HTTP:
answering with headers and then nothing, one byte a second, a TCP reset, bytes that are not
HTTP at all. It runs its own event loop in a thread, so the monitor under test can run in the
test's loop (or in `asyncio.run`, as `monitor fetch` does) against it.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Conn:
    """One request on one connection; the handler writes whatever it likes to `writer`."""

    method: str
    path: str
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: Hostile

    async def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.writer.write(head(status, {"Content-Length": str(len(body)), **(headers or {})}))
        self.writer.write(body)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN (SO_LINGER 0)."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}"]
    lines += [f"{k}: {v}" for k, v in {"Connection": "close", **headers}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
           404: "Not Found", 410: "Gone", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


@dataclass
class Hostile:
    """`with Hostile() as h: h.routes["/x"] = handler; h.url("/x")`; `h.hits` lists paths asked."""

    host: str = "127.0.0.1"
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hostile-server")
        self.port = 0

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def count(self, path: str) -> int:
        return sum(1 for p in list(self.hits) if p == path)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, self.host, 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            if len(request_line) < 2:
                return
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            method, path = request_line[0], request_line[1]
            self.hits.append(path)
            handler = self.routes.get(path.split("?")[0])
            conn = Conn(method, path, headers, reader, writer, self)
            if handler is None:
                await conn.respond(404, b"no such route", {"Content-Type": "text/plain"})
            else:
                await handler(conn)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client gave up (as it should) or the server is stopping
        finally:
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    def __enter__(self) -> Hostile:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


# --- the faults -----------------------------------------------------------------------------


def rss(*titles: str, tag: str = "ok") -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://news.example/{tag}/{i}</link>"
        f"<guid>{tag}-{i}</guid><description>{t} happened.</description></item>"
        for i, t in enumerate(titles)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Healthy</title><link>https://news.example/</link>{items}</channel></rss>"
    ).encode()


def document(body: bytes, content_type: str = "application/rss+xml", status: int = 200) -> Handler:
    async def handler(conn: Conn) -> None:
        await conn.respond(status, body, {"Content-Type": content_type})

    return handler


def status(code: int, retry_after: str | None = None) -> Handler:
    extra = {"Retry-After": retry_after} if retry_after else {}

    async def handler(conn: Conn) -> None:
        await conn.respond(code, f"{code}".encode(), {"Content-Type": "text/plain", **extra})

    return handler


def redirect(location: str, code: int = 302) -> Handler:
    async def handler(conn: Conn) -> None:
        await conn.respond(code, b"moved", {"Location": location})

    return handler


async def hang_after_headers(conn: Conn) -> None:
    conn.writer.write(head(200, {"Content-Type": "application/rss+xml", "Content-Length": "500"}))
    await conn.writer.drain()
    await asyncio.Event().wait()  # until the client gives up or the server stops


async def hang_before_headers(conn: Conn) -> None:
    await asyncio.Event().wait()


async def trickle(conn: Conn) -> None:
    """A valid feed, one byte a second: each read succeeds, so only a total deadline ends it."""
    body = rss("Slow news")
    conn.writer.write(head(200, {"Content-Type": "application/rss+xml",
                                 "Content-Length": str(len(body))}))  # fmt: skip
    for i in range(len(body)):
        conn.writer.write(body[i : i + 1])
        await conn.writer.drain()
        await asyncio.sleep(1)


async def reset(conn: Conn) -> None:
    conn.reset()


async def reset_mid_body(conn: Conn) -> None:
    conn.writer.write(head(200, {"Content-Type": "application/rss+xml", "Content-Length": "5000"}))
    conn.writer.write(rss("Cut")[:100])
    await conn.writer.drain()
    await asyncio.sleep(0.05)
    conn.reset()


def chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def endless(conn: Conn) -> None:
    """A chunked body that never ends (no Content-Length to refuse it up front)."""
    conn.writer.write(head(200, {"Content-Type": "application/rss+xml",
                                 "Transfer-Encoding": "chunked"}))  # fmt: skip
    conn.writer.write(chunked(b'<?xml version="1.0"?><rss version="2.0"><channel>'))
    frame = chunked(b"<item><title>more</title></item>" * 2000)
    while True:
        conn.writer.write(frame)
        await conn.writer.drain()


async def endless_gzip(conn: Conn) -> None:
    """Endless gzip members of zeros: small on the wire, unbounded once inflated."""
    headers = {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"}
    conn.writer.write(head(200, {**headers, "Transfer-Encoding": "chunked"}))
    frame = chunked(gzip.compress(b"\0" * 5_000_000))
    while True:
        conn.writer.write(frame)
        await conn.writer.drain()


async def huge_declared(conn: Conn) -> None:
    conn.writer.write(head(200, {"Content-Type": "application/rss+xml",
                                 "Content-Length": str(50 * 1024**3)}))  # fmt: skip
    await conn.writer.drain()
    await asyncio.Event().wait()


async def garbage(conn: Conn) -> None:
    """Bytes that are not an HTTP response at all."""
    conn.writer.write(bytes(range(256)) * 8 + b"\r\n\r\n")
    await conn.writer.drain()


# Hostile documents, each the smallest that makes the point.
LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b']>\n<rss version="2.0"><channel><title>&lol9;</title>'
    b"<item><title>&lol9;</title><link>https://news.example/lol</link></item></channel></rss>"
)
XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<rss version="2.0"><channel><title>t</title><item><title>&xxe;</title>'
    b"<link>https://news.example/xxe</link><description>&xxe;</description></item></channel></rss>"
)
SITEMAP_XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
    b"<url><loc>https://news.example/&xxe;</loc></url></urlset>"
)
SITEMAP_LAUGHS = LAUGHS.replace(b"<rss", b"<urlset").replace(b"</rss>", b"</urlset>")
INVALID_UTF8 = (
    b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>\xff\xfe</title>'
    b"<item><title>Caf\xe9 \xc3\x28 \xed\xa0\x80 news</title><link>https://news.example/utf8</link>"
    b"<guid>utf8-1</guid></item></channel></rss>"
)
DEPTH = 10_000
NESTED_XML = b'<?xml version="1.0"?><rss version="2.0"><channel>' + b"<x>" * DEPTH
NESTED_XML += b"</x>" * DEPTH + b"</channel></rss>"
NESTED_JSON = (
    b'{"version": "https://jsonfeed.org/version/1.1", "title": "deep", "items": '
    + b"[" * DEPTH
    + b"]" * DEPTH
    + b"}"
)
NESTED_HTML = (
    b"<!doctype html><html><body>"
    + b"<div>" * DEPTH
    + b'<article><h2><a href="/deep">Deep story</a></h2><p>'
    + b"<b>" * DEPTH
    + b"bottom"
    + b"</b>" * DEPTH
    + b"</p></article>"
    + b"</div>" * DEPTH
    + b"</body></html>"
)


def private_links_page(port: int) -> bytes:
    return f"""<!doctype html><html><body>
<article><h2><a href="http://127.0.0.1:{port}/secret">Loopback link</a></h2><p>one</p></article>
<article><h2><a href="http://169.254.169.254/latest/meta-data/iam/">Metadata link</a></h2>
  <p>two</p><img src="http://169.254.169.254/latest/meta-data/hostname"></article>
<article><h2><a href="http://[::ffff:169.254.169.254]/latest/">Mapped</a></h2><p>3</p></article>
</body></html>""".encode()


# --- the guard against a guard failure ------------------------------------------------------


class Tripwire:
    """Refuses, and records, every socket connection to a non-loopback address in this process.

    Installed by the fault tests so that a regression in the private-address guard ends in a
    failed test, never in a real packet to 169.254.169.254 or a private network.
    """

    def __init__(self) -> None:
        self.attempts: list[object] = []
        self._connect = socket.socket.connect
        self._connect_ex = socket.socket.connect_ex

    def allowed(self, address: object) -> bool:
        import ipaddress

        if isinstance(address, tuple) and address:
            try:
                return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
            except ValueError:
                return False
        return isinstance(address, str | bytes)  # unix sockets stay on this machine

    def install(self, monkeypatch: object) -> None:
        wire = self

        def connect(sock: socket.socket, address: object) -> None:
            if not wire.allowed(address):
                wire.attempts.append(address)
                raise ConnectionRefusedError(f"tripwire: test tried to connect to {address}")
            return wire._connect(sock, address)

        def connect_ex(sock: socket.socket, address: object) -> int:
            if not wire.allowed(address):
                wire.attempts.append(address)
                raise ConnectionRefusedError(f"tripwire: test tried to connect to {address}")
            return wire._connect_ex(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)  # type: ignore[attr-defined]
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)  # type: ignore[attr-defined]
