"""A feed origin for bench_poll: N generated RSS 2.0 feeds, each on its own loopback IP or all on one.

Run as its own process (`python bench/_server.py --feeds 200 --items 30`) so that its CPU is
not counted against the client being measured. It prints one JSON line (port, feed URLs) when
it listens, and stops when its stdin closes, on SIGTERM, or after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from email.utils import format_datetime, parsedate_to_datetime
from html import escape
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import Corpus  # noqa: E402

MAX_HEAD = 16_384
IDLE_SECONDS = 15.0  # a keep-alive connection idle this long is closed
MAX_REQUESTS_PER_CONNECTION = 1_000
EPOCH = 1_732_000_000  # fixed "now" of the generated feeds, so every run serves the same bytes

_OUTLETS = ["Agence", "Herald", "Tribune", "Courier", "Post", "Gazette", "Monitor", "Journal"]


def feed_ip(i: int) -> str:
    """127.0.0.2, 127.0.0.3, ...: one loopback address per feed, as real feeds sit on their own hosts."""
    return f"127.0.{i // 250}.{2 + i % 250}"


def feed_path(i: int) -> str:
    return f"/feeds/{i:04d}/rss.xml"


def render_feed(i: int, items: int, corpus: Corpus, host: str) -> bytes:
    """RSS 2.0 as outlets publish it: guid, pubDate, HTML description, media:content, dc:creator."""
    lang = corpus.lang()
    name = f"{corpus.rng.choice(_OUTLETS)} {i:04d}"
    site = f"https://outlet{i:04d}.example"
    built = EPOCH - i * 37
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">\n'
        "<channel>\n",
        f"<title>{escape(name)}</title>\n<link>{site}/</link>\n",
        f"<description>Latest news from {escape(name)}</description>\n<language>{lang}</language>\n",
        f'<atom:link href="http://{host}{feed_path(i)}" rel="self" type="application/rss+xml"/>\n',
        f"<lastBuildDate>{_http_date(built)}</lastBuildDate>\n<ttl>15</ttl>\n",
    ]
    for j in range(items):
        _, title, paragraphs = corpus.article(lang)
        slug = f"{2024}/{(j % 12) + 1:02d}/story-{i:04d}-{j:03d}"
        link = f"{site}/{slug}.html"
        image = f"{site}/images/{i:04d}-{j:03d}.jpg"
        body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        # A link and some markup inside the description, as most outlets' feeds have.
        body = (
            f'<p><img src="{image}" alt="" width="640" height="360"/></p>{body}'
            f'<p><a href="{link}">Read more</a> &#8212; <em>{escape(name)}</em></p>'
        )
        out.append(
            "<item>\n"
            f"<title>{escape(title)}</title>\n<link>{link}</link>\n"
            f'<guid isPermaLink="false">urn:outlet:{i:04d}:{j:05d}</guid>\n'
            f"<pubDate>{_http_date(built - j * 1800)}</pubDate>\n"
            f"<dc:creator>{escape(corpus.rng.choice(_OUTLETS))} desk</dc:creator>\n"
            f"<category>{escape(title.split()[0])}</category>\n"
            f"<description><![CDATA[{body}]]></description>\n"
            f'<media:content url="{image}" medium="image" type="image/jpeg" '
            'width="1280" height="720"/>\n'
            "</item>\n"
        )
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode()


def _http_date(epoch: float) -> str:
    from datetime import UTC, datetime

    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


class Feed:
    def __init__(self, body: bytes, last_modified: float) -> None:
        self.body = body
        self.gz = gzip.compress(body, 6)
        self.etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
        self.last_modified = _http_date(last_modified)
        self.last_modified_epoch = int(last_modified)


class Origin:
    def __init__(self, feeds: dict[str, Feed], delay: float = 0.0) -> None:
        self.feeds = feeds
        self.delay = delay
        self.stats: Counter[str] = Counter()

    def answer(
        self, path: str, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if path == "/_stats":
            return 200, [("Content-Type", "application/json")], json.dumps(self.stats).encode()
        feed = self.feeds.get(path)
        if feed is None:
            self.stats["404"] += 1
            return 404, [("Content-Type", "text/plain")], b"not found"
        common = [("ETag", feed.etag), ("Last-Modified", feed.last_modified)]
        if _not_modified(feed, headers):
            self.stats["304"] += 1
            return 304, common, b""
        self.stats["200"] += 1
        hdrs = [("Content-Type", "application/rss+xml; charset=utf-8"), ("Vary", "Accept-Encoding")]
        if "gzip" in headers.get("accept-encoding", ""):
            self.stats["bytes"] += len(feed.gz)
            return 200, [*common, *hdrs, ("Content-Encoding", "gzip")], feed.gz
        self.stats["bytes"] += len(feed.body)
        return 200, [*common, *hdrs], feed.body

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_SECONDS)
                except (
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                    TimeoutError,
                    ConnectionError,
                ):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, version = parts
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                status, resp_headers, body = self.answer(target.split("?")[0], headers)
                if self.delay and not target.startswith("/_stats"):
                    # Stands for the network round trip and the origin's think time that a
                    # loopback server lacks; a sleep, so concurrent requests overlap as in life.
                    await asyncio.sleep(self.delay)
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
                out = [f"HTTP/1.1 {status} {reason}", f"Date: {_http_date(time.time())}"]
                out += [f"{k}: {v}" for k, v in resp_headers]
                if status != 304:
                    out.append(f"Content-Length: {len(body)}")
                out.append("Connection: close" if close else "Connection: keep-alive")
                payload = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                if method != "HEAD":
                    payload += body
                writer.write(payload)
                await writer.drain()
                if close:
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


def _not_modified(feed: Feed, headers: dict[str, str]) -> bool:
    inm = headers.get("if-none-match")
    if inm is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        return inm.strip() == "*" or feed.etag in [t.strip() for t in inm.split(",")]
    ims = headers.get("if-modified-since")
    if ims:
        try:
            return int(parsedate_to_datetime(ims).timestamp()) >= feed.last_modified_epoch
        except (TypeError, ValueError, IndexError):
            return False
    return False


def _listen(ip: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ip, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _bind_all(ips: list[str]) -> tuple[int, list[socket.socket]]:
    """The same free port on every address (ephemeral on the first, then tried on the rest)."""
    for _ in range(20):  # bounded: another process may hold the port on one of the addresses
        first = _listen(ips[0], 0)
        port = first.getsockname()[1]
        socks = [first]
        try:
            socks += [_listen(ip, port) for ip in ips[1:]]
        except OSError:
            for s in socks:
                s.close()
            continue
        return port, socks
    raise SystemExit("could not find a port free on every loopback address")


async def serve(args: argparse.Namespace) -> None:
    # --one-host: every feed on 127.0.0.2, as an outlet serves its sections' feeds from one host.
    ips = [feed_ip(0) if args.one_host else feed_ip(i) for i in range(args.feeds)]
    port, socks = _bind_all(["127.0.0.1", *dict.fromkeys(ips)])
    corpus = Corpus(seed=args.seed, tail=5_000)
    feeds = {}
    urls = []
    for i, ip in enumerate(ips):
        host = f"{ip}:{port}"
        feeds[feed_path(i)] = Feed(render_feed(i, args.items, corpus, host), EPOCH - i * 37)
        urls.append(f"http://{host}{feed_path(i)}")
    origin = Origin(feeds, args.delay_ms / 1000)
    loop = asyncio.get_running_loop()
    servers = [await asyncio.start_server(origin.handle, sock=s, limit=MAX_HEAD) for s in socks]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        # The parent holds our stdin: when it goes away (even killed), so do we.
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    sizes = [len(f.body) for f in feeds.values()]
    gz = [len(f.gz) for f in feeds.values()]
    print(
        json.dumps(
            {
                "port": port,
                "stats": f"http://127.0.0.1:{port}/_stats",
                "urls": urls,
                "bytes_per_feed": sum(sizes) // len(sizes),
                "gzip_bytes_per_feed": sum(gz) // len(gz),
            }
        ),
        flush=True,
    )
    try:
        await asyncio.wait_for(stop.wait(), args.lifetime)
    except TimeoutError:
        print("feed server: lifetime over, stopping", file=sys.stderr)
    for s in servers:
        s.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--feeds", type=int, default=200)
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--delay-ms", type=float, default=0.0, help="wait before each answer")
    p.add_argument("--lifetime", type=float, default=3600.0, help="stop after this many seconds")
    p.add_argument("--one-host", action="store_true", help="every feed on one loopback address")
    args = p.parse_args()
    if not 1 <= args.feeds <= 60_000:
        p.error("--feeds must be between 1 and 60000")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
