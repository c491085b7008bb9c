"""Benchmark: parse_feed's lxml fast path against plain feedparser on a 200-item RSS 2.0 feed,
and parse_feed over every real feed in ../shared/realdata (when it is there).

    python bench/bench_feedparse.py [-n RUNS] [--items N]

The feed is generated to look like a newsroom's: HTML descriptions with links and images,
content:encoded bodies, dc:creator, RFC 822 dates and media:content with a thumbnail. The
real feeds are the captures the tests parse (RSS, Atom, JSON Feed, YouTube and Mastodon
feeds), read from bytes as fetched, in every code page and state of repair they came in.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.errors import ParseError  # noqa: E402
from monitor.sources.feed import parse_feed  # noqa: E402

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"

PARAGRAPH = (
    "<p>NATO defence ministers met in <a href='/news/{i}/context'>Brussels</a> on "
    "<strong>Thursday</strong> to discuss support for Ukraine, air defence and the "
    "deployment of troops on the eastern flank.</p>"
)


def make_feed(items: int) -> bytes:
    start = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:media="http://search.yahoo.com/mrss/">\n<channel>\n'
        "<title>Newsroom</title><link>https://news.example.org/</link>"
        "<description>All the news</description><language>en-gb</language>\n"
    ]
    for i in range(items):
        when = format_datetime(start - timedelta(minutes=7 * i))
        summary = PARAGRAPH.format(i=i) + f"<img src='/img/{i}.jpg' alt=''/>"
        body = "".join(PARAGRAPH.format(i=i) for _ in range(4))
        parts.append(
            "<item>"
            f"<title>Ministers discuss air defence &amp; troops, part {i}</title>"
            f"<link>https://news.example.org/2025/03/04/story-{i}</link>"
            f'<guid isPermaLink="false">story-{i}</guid>'
            f"<description>{escape(summary)}</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded>"
            f"<dc:creator>Reporter {i % 17}</dc:creator>"
            f"<pubDate>{when}</pubDate>"
            f'<media:content url="https://cdn.example.org/img/{i}.jpg" medium="image" '
            f'type="image/jpeg" width="1200" height="800">'
            f'<media:thumbnail url="https://cdn.example.org/img/{i}-small.jpg" width="240"/>'
            "</media:content>"
            "</item>\n"
        )
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")


def per_parse_ms(fn, runs: int) -> float:
    fn()  # warm up: imports, caches
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=20)
    ap.add_argument("--items", type=int, default=200)
    args = ap.parse_args()

    import feedparser

    body = make_feed(args.items)
    url = "https://news.example.org/feed.xml"
    posts = parse_feed(body, url)
    entries = feedparser.parse(io.BytesIO(body)).entries
    assert len(posts) == len(entries) == args.items, (len(posts), len(entries))

    fast = per_parse_ms(lambda: parse_feed(body, url), args.runs)
    slow = per_parse_ms(lambda: feedparser.parse(io.BytesIO(body)), args.runs)
    print(f"feed: {args.items} items, {len(body) / 1024:.0f} KiB, {args.runs} runs each")
    print(f"parse_feed (lxml fast path): {fast:8.1f} ms per parse")
    print(f"feedparser.parse:            {slow:8.1f} ms per parse")
    print(f"ratio: parse_feed is {slow / fast:.1f}x faster")
    realdata(args.runs)


def realdata_feeds() -> list[Path]:
    paths = [p for d in ("rss", "atom", "jsonfeed") for p in (REALDATA / d).glob("*")]
    paths += (REALDATA / "youtube").glob("channel-feed-*.xml")
    paths += (REALDATA / "mastodon").glob("account-rss-*.xml")
    return sorted(paths)


def realdata(runs: int) -> None:
    """The whole real corpus, parsed from bytes, per pass; and the slowest files."""
    if not REALDATA.is_dir():
        print(f"realdata: not present at {REALDATA}, skipped")
        return
    feeds = [(p.relative_to(REALDATA).as_posix(), p.read_bytes()) for p in realdata_feeds()]

    def parse(body: bytes) -> None:
        # The deliberately broken captures: their clean error is the work.
        with contextlib.suppress(ParseError):
            parse_feed(body, "https://example.org/feed")

    each = {name: per_parse_ms(lambda b=body: parse(b), runs) for name, body in feeds}
    size = sum(len(body) for _, body in feeds)
    print(f"realdata: {len(feeds)} feeds, {size / 1024:.0f} KiB, {runs} runs each")
    print(f"parse_feed over the corpus:  {sum(each.values()):8.1f} ms per pass")
    for name, ms in sorted(each.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {ms:7.2f} ms  {name}")


if __name__ == "__main__":
    main()
