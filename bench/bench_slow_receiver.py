"""Benchmark: how long a hanging webhook delays a healthy one's alert in `monitor run`.

    python bench/bench_slow_receiver.py [--pending 10] [--timeout 3s] [--reps 3]
    python bench/bench_slow_receiver.py --src /path/to/another/checkout   # older code

Two webhooks on 127.0.0.1: `slow` reads each POST and never answers (the notifier's
`timeout` cuts it), `desk` answers at once. The daemon starts with --pending alerts for
`slow` (one feed of that many matching items); once the first of them hangs, a second feed,
fetched every second, publishes an item that matches an alert for `desk`. The delay is from
the moment the origin served that item to the moment `desk` received its alert: the time to
fetch, store, match and send, plus whatever waiting on `slow` adds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def rss(items: list[tuple[str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>https://example.org/{g}</link><guid>{g}</guid>"
        f"<description>{t}</description></item>"
        for g, t in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://example.org</link>{body}</channel></rss>"
    ).encode()


class Stage:
    """The feeds, the hanging receiver and the healthy one, on one threaded server."""

    def __init__(self, pending: int) -> None:
        self.feeds = {
            "/slow.xml": rss([(f"s{i}", f"NATO troops item {i}") for i in range(pending)]),
            "/desk.xml": rss([("d0", "Weather report")]),
        }
        self.hung: list[float] = []
        self.served_at: float | None = None  # when /desk.xml first served the matching item
        self.received_at: float | None = None
        self.release = threading.Event()
        stage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                body = stage.feeds.get(self.path)
                if body is None:
                    self.reply(404, b"")
                    return
                self.reply(200, body)
                if self.path == "/desk.xml" and b"d1" in body and stage.served_at is None:
                    stage.served_at = time.monotonic()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/slow":
                    stage.hung.append(time.monotonic())
                    stage.release.wait(600)
                    with_body = b""
                else:
                    if stage.received_at is None:
                        stage.received_at = time.monotonic()
                    with_body = b"ok"
                with contextlib.suppress(OSError):  # the daemon gave up on it
                    self.reply(200, with_body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def one(src: Path, pending: int, timeout: str, work: Path) -> float:
    stage = Stage(pending)
    cfg = work / "m.toml"
    db = work / "m.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    cfg.write_text(f"""
[monitor]
database = "{db}"
every = "1h"
timeout = "5s"
[sources.slow-feed]
type = "feed"
url = "{stage.base}/slow.xml"
[sources.desk-feed]
type = "feed"
url = "{stage.base}/desk.xml"
every = "1s"
[notifiers.slow]
type = "webhook"
url = "{stage.base}/slow"
timeout = "{timeout}"
[notifiers.desk]
type = "webhook"
url = "{stage.base}/desk"
[alerts.slow-nato]
query = 'NATO troops'
sources = ["slow-feed"]
notify = ["slow"]
[alerts.desk-nato]
query = 'NATO troops'
sources = ["desk-feed"]
notify = ["desk"]
""")
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL, stderr=(work / "run.log").open("w"), env=env, cwd=work,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not stage.hung and time.monotonic() < deadline:
            time.sleep(0.05)
        if not stage.hung:
            raise SystemExit(f"the slow receiver got nothing; see {work / 'run.log'}")
        stage.feeds["/desk.xml"] = rss([("d0", "Weather report"), ("d1", "NATO troops move")])
        deadline = time.monotonic() + 600
        while stage.received_at is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if stage.received_at is None or stage.served_at is None:
            raise SystemExit(f"the healthy receiver got nothing; see {work / 'run.log'}")
        return stage.received_at - stage.served_at
    finally:
        stage.release.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        stage.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pending", type=int, default=10, help="alerts hanging at the slow webhook")
    p.add_argument("--timeout", default="3s", help="the slow webhook's timeout (default 3s)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--src", type=Path, default=BENCH.parent, help="checkout of the monitor to run")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-slow-receiver-"))
    delays = [one(args.src, args.pending, args.timeout, work) for _ in range(args.reps)]
    print(f"{args.src}: {args.pending} alerts hanging at a webhook with timeout {args.timeout}; "
          f"a healthy webhook's alert arrived {statistics.median(delays):.2f} s after its item "
          f"was served (median of {args.reps}: {', '.join(f'{d:.2f}' for d in delays)}); "
          "target < 1 s")  # fmt: skip


if __name__ == "__main__":
    main()
