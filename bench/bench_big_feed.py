"""Benchmark: the daemon's longest event-loop stall while it takes in one huge feed.

    python bench/bench_big_feed.py [--items 24000] [--notify] [--src /path/to/a/checkout]

A legal RSS document of --items items (24,000 make 9.6 MB, under the 10 MB `max_body`),
every one of them matching an alert, is served on 127.0.0.1; `monitor run`'s Daemon runs in
this process with a heartbeat task beside it that sleeps 5 ms at a time and records how late
it wakes. The longest delay is the longest time no other source could have been fetched and
no alert sent. It stops once every item is matched (and, with --notify, delivered to a
webhook on 127.0.0.1). Target: no stall over about 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent

WORDS = ("ministers", "talks", "border", "envoy", "summit", "statement", "ceasefire", "aid")


def big_feed(items: int) -> bytes:
    """RSS 2.0 of `items` items of about 400 bytes, each mentioning NATO troops."""
    start = datetime(2026, 11, 19, 12, tzinfo=UTC)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
           "<title>Wire</title><link>https://wire.example/</link>"
           "<description>Everything, at once</description>\n"]  # fmt: skip
    for i in range(items):
        w = WORDS[i % len(WORDS)]
        date = format_datetime(start - timedelta(minutes=i))
        out.append(
            f"<item><title>NATO troops and the {w}: report {i}</title>"
            f"<link>https://wire.example/news/{i}</link><guid>wire-{i}</guid>"
            f"<pubDate>{date}</pubDate><description>Ministers discussed NATO troops in "
            f"Ukraine and the {w} on day {i % 31}; the statement followed talks in the "
            f"capital, officials said, adding that more talks would follow soon.</description></item>\n"
        )
    out.append("</channel></rss>\n")
    return "".join(out).encode()


class Serve:
    def __init__(self, feed: bytes) -> None:
        self.posts = 0

        serve = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self.reply(feed, "application/rss+xml")

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                serve.posts += 1
                self.reply(b"", "text/plain")  # the notifier does not read a 2xx body

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


async def measure(config_path: Path, db: Path, items: int, notify: bool) -> tuple[float, float]:
    from monitor.config import load_config
    from monitor.schedule import Daemon

    daemon = Daemon(load_config(config_path))
    loop = asyncio.get_running_loop()
    worst = 0.0
    stalls: list[float] = []
    started = loop.time()
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal worst
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            late = loop.time() - before - 0.005
            worst = max(worst, late)
            stalls.append(late)

    def finished() -> bool:
        con = sqlite3.connect(db, timeout=30)
        try:
            (matched,) = con.execute("SELECT count(*) FROM matches").fetchone()
            if not notify:
                return bool(matched >= items)
            (sent,) = con.execute(
                "SELECT count(*) FROM deliveries WHERE status = 'sent'"
            ).fetchone()
            return bool(sent >= items)
        except sqlite3.Error:
            return False
        finally:
            con.close()

    async def watch() -> None:
        while not await asyncio.to_thread(finished):
            await asyncio.sleep(0.5)
        done.set()
        daemon.stop.set()

    beat = asyncio.create_task(heartbeat())
    watcher = asyncio.create_task(watch())
    await daemon.run()
    done.set()  # also when it was stopped by a signal before the end
    watcher.cancel()
    await beat
    over = sum(late > 0.1 for late in stalls)
    print(f"heartbeats {len(stalls)}, later than 50 ms: {sum(late > 0.05 for late in stalls)}, "
          f"later than 100 ms: {over}")  # fmt: skip
    return worst, loop.time() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=24_000)
    p.add_argument("--notify", action="store_true", help="also deliver every match to a webhook")
    p.add_argument("--src", type=Path, default=BENCH.parent, help="checkout of the monitor to run")
    args = p.parse_args()
    sys.path.insert(0, str(args.src.resolve()))
    feed = big_feed(args.items)
    serve = Serve(feed)
    work = Path(tempfile.mkdtemp(prefix="bench-big-feed-"))
    db = work / "m.db"
    cfg = work / "m.toml"
    notifier = f'[notifiers.hook]\ntype = "webhook"\nurl = "{serve.base}/hook"\n'
    cfg.write_text(
        f'[monitor]\ndatabase = "{db}"\nevery = "1h"\ntimeout = "60s"\n'
        f'[sources.wire]\ntype = "feed"\nurl = "{serve.base}/wire.xml"\n'
        + (notifier if args.notify else "")
        + "[alerts.nato]\nquery = 'NATO troops'\n"
        + f"notify = {['hook'] if args.notify else []}\n".replace("'", '"')
    )
    worst, took = asyncio.run(measure(cfg, db, args.items, args.notify))
    import monitor

    print(f"{Path(monitor.__file__).parent.parent}: {args.items} items, {len(feed) / 1e6:.1f} MB, all matching"
          f"{', each delivered to a webhook' if args.notify else ''}: done in {took:.1f} s; "
          f"longest event-loop stall {worst * 1000:.0f} ms (target about 100 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
