"""Soak: `monitor run` against 500 faulty loopback sources; memory, descriptors and stuck jobs.

    python bench/soak.py [--duration 600] [--sources 500] [--sample 10] [--every 30s]

The origin runs in its own process (this file with --serve): each source on its own loopback
address (127.0.0.2, 127.0.0.3, ...), answering with its feed (which grows and is edited over
time) or, at random, a fault: slow, hang, hang after the headers, trickle, 500, 503/429 with
Retry-After, garbage bytes, a connection reset, a redirect loop, a huge body. Alerts go to a
webhook on the same origin, which fails or is slow now and then.

Every --sample seconds it prints the daemon's resident memory (/proc/<pid>/status VmRSS), open
descriptors (/proc/<pid>/fd) and the number of stuck sources: those whose next fetch is overdue
(due from the `sources` row as the daemon resumes: last start + every, or the backoff's next
attempt) by more than one schedule tick, the jitter, the fetch deadline (3 × timeout, see
monitor/pipeline.py) and --margin — a fetch is logged when it ends, so a hung one shows so.
It exits 1 if the daemon dies, a source is ever stuck, the daemon does not stop cleanly on
SIGTERM, or memory or descriptors grow past the limits after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from _server import _bind_all, feed_ip  # noqa: E402

MAX_HEAD = 16_384
FEED_ITEMS = 20  # items listed per feed: older ones drop off, as in real feeds
HANG_LIMIT = 120.0  # a hanging answer gives up after this, so the origin cannot leak either

# Per request, by source profile: the chance of a fault instead of the feed.
PROFILES = {"healthy": 0.05, "flaky": 0.4, "broken": 0.95}
FAULTS = {  # fault → weight
    "slow": 4, "hang": 2, "hang_headers": 2, "trickle": 1, "s500": 4, "s503": 2, "s429": 3,
    "garbage": 3, "reset": 3, "redirect_loop": 2, "big_declared": 1, "big_streamed": 1,
}  # fmt: skip


# -- the origin (child process) --------------------------------------------------------------


class FaultyOrigin:
    def __init__(self, sources: int, seed: int, port: int) -> None:
        self.rng = random.Random(seed)
        self.t0 = time.time()
        self.port = port
        self.stats: Counter[str] = Counter()
        self.hook_ids: Counter[str] = Counter()
        self.profile = [
            self.rng.choices(list(PROFILES), weights=[6, 3, 1])[0] for _ in range(sources)
        ]
        self.period = [self.rng.uniform(60, 300) for _ in range(sources)]
        self.cache: dict[tuple[int, int, int], tuple[bytes, str]] = {}

    def feed(self, i: int) -> tuple[bytes, str]:
        """Source i's feed now: a new item every period, the newest edited now and then."""
        elapsed = time.time() - self.t0
        count = 3 + int(elapsed / self.period[i])
        edit = int(elapsed / (self.period[i] * 0.7)) % 3
        key = (i, count, edit)
        if key not in self.cache:
            if len(self.cache) > 4 * len(self.period):
                self.cache.clear()  # bounded: old versions are never asked for again
            self.cache[key] = self._render(i, count, edit)
        return self.cache[key]

    def _render(self, i: int, count: int, edit: int) -> tuple[bytes, str]:
        items = []
        for j in range(max(0, count - FEED_ITEMS), count):
            hot = hashlib.sha1(f"{i}:{j}".encode()).digest()[0] < 20  # about 8% match
            text = (
                "Asked about NATO troops in Ukraine, the minister did not answer."
                if hot
                else "The central bank kept its rate unchanged and said inflation was easing."
            )
            if j == count - 1 and edit:
                text += f" (Updated {edit}.)"
            items.append(
                f"<item><title>Story {j} from outlet {i}</title>"
                f"<link>https://outlet{i}.example/{j}</link><guid>o{i}-{j}</guid>"
                f"<pubDate>Mon, 23 Nov 2026 10:{j % 60:02d}:00 +0000</pubDate>"
                f"<description>{text} {'Lorem ipsum dolor sit amet. ' * 8}</description></item>"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            f"<title>Outlet {i}</title><link>https://outlet{i}.example/</link>"
            f"{''.join(reversed(items))}</channel></rss>"
        ).encode()
        return body, '"' + hashlib.sha1(body).hexdigest()[:16] + '"'

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):  # requests per connection
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = (lines[0].split(" ") + ["", "", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                if method == "POST":
                    keep = await self.hook(reader, writer, headers)
                elif target == "/_stats":
                    body = json.dumps(
                        {"answers": self.stats, "hook_ids": len(self.hook_ids),
                         "hook_posts": sum(self.hook_ids.values()),
                         "hook_ids_posted_twice": sum(n > 1 for n in self.hook_ids.values())}
                    ).encode()  # fmt: skip
                    await _answer(writer, 200, [("Content-Type", "application/json")], body)
                    keep = True
                else:
                    keep = await self.get(target, headers, reader, writer)
                if not keep:
                    return
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # the origin is stopping; a cancelled handler would be logged by asyncio (3.11)
        finally:
            writer.close()

    async def get(
        self,
        target: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path, _, query = target.partition("?")
        if query.startswith("hop="):  # a redirect loop, once entered, never ends
            hop = int(query[4:] or 0) + 1
            await _answer(writer, 302, [("Location", f"{path}?hop={hop}")], b"")
            return True
        parts = path.split("/")
        if len(parts) != 4 or parts[1] != "feeds" or not parts[2].isdigit():
            await _answer(writer, 404, [], b"not found")
            return True
        i = int(parts[2])
        if i >= len(self.profile):
            await _answer(writer, 404, [], b"not found")
            return True
        fault = None
        if self.rng.random() < PROFILES[self.profile[i]]:
            fault = self.rng.choices(list(FAULTS), weights=list(FAULTS.values()))[0]
        self.stats[fault or "feed"] += 1
        body, etag = self.feed(i)
        if fault == "slow":
            await asyncio.sleep(self.rng.uniform(1, 4))
        elif fault in ("hang", "hang_headers"):
            if fault == "hang_headers":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n<?xml ")
            await _until_closed(reader, HANG_LIMIT)
            return False
        elif fault == "trickle":
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            for k in range(min(len(body), int(HANG_LIMIT))):
                writer.write(body[k : k + 1])
                await writer.drain()
                await asyncio.sleep(1)
            return False
        elif fault in ("s500", "s503", "s429"):
            status = int(fault[1:])
            extra = [] if status == 500 else [("Retry-After", str(self.rng.randint(5, 90)))]
            await _answer(writer, status, extra, b"<html>try later</html>")
            return True
        elif fault == "garbage":
            junk = os.urandom(self.rng.randint(100, 50_000))
            await _answer(writer, 200, [("Content-Type", "application/rss+xml")], junk)
            return True
        elif fault == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        elif fault == "redirect_loop":
            await _answer(writer, 302, [("Location", f"{path}?hop=1")], b"")
            return True
        elif fault == "big_declared":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\n\r\n")
            await _stream_filler(writer, 50_000_000)
            return False
        elif fault == "big_streamed":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await _stream_filler(writer, 40_000_000, chunked=True)
            return False
        if headers.get("if-none-match") == etag:
            await _answer(writer, 304, [("ETag", etag)], b"", with_length=False)
        else:
            await _answer(
                writer, 200, [("ETag", etag), ("Content-Type", "application/rss+xml")], body
            )
        return True

    async def hook(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
    ) -> bool:
        await reader.readexactly(int(headers.get("content-length") or 0))
        self.hook_ids[headers.get("webhook-id", "?")] += 1
        luck = self.rng.random()
        if luck < 0.05:
            self.stats["hook_500"] += 1
            await _answer(writer, 500, [], b"down")
            return True
        if luck < 0.10:
            self.stats["hook_slow"] += 1
            await asyncio.sleep(3)
        self.stats["hook_ok"] += 1
        await _answer(writer, 200, [], b"ok")
        return True


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    with_length: bool = True,
) -> None:
    out = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    if with_length:
        out.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _until_closed(reader: asyncio.StreamReader, limit: float) -> None:
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(reader.read(), limit)


async def _stream_filler(writer: asyncio.StreamWriter, total: int, chunked: bool = False) -> None:
    chunk = b"<item><title>x</title></item>" * 9000  # about 260 KB
    sent = 0
    while sent < total:
        data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
        writer.write(data)
        await writer.drain()  # raises once the client has given up
        sent += len(chunk)


async def serve(sources: int, seed: int, lifetime: float) -> None:
    ips = [feed_ip(i) for i in range(sources)]
    port, socks = _bind_all(["127.0.0.1", *ips])
    origin = FaultyOrigin(sources, seed, port)
    servers = [await asyncio.start_server(origin.handle, sock=s, limit=MAX_HEAD) for s in socks]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:
        sys.stdin.buffer.read()  # the parent holds our stdin: when it goes, so do we
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps({"port": port, "profiles": Counter(origin.profile)}), flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), lifetime)
    for s in servers:
        s.close()


# -- the daemon and the measurements ---------------------------------------------------------


@dataclass
class Sample:
    t: float
    cpu: float  # percent of one core since the previous sample
    rss_mb: float
    fds: int
    fetches: int
    ok: int
    stuck: int
    overdue: int
    posts: int
    matches: int
    sent: int
    pending: int


JITTER = 10.0  # [monitor] jitter of the soak's configuration, in seconds


def write_config(path: Path, port: int, sources: int, every: str, timeout: str) -> None:
    lines = [
        "[monitor]",
        f'database = "{path.parent / "soak.db"}"',
        f'every = "{every}"',
        f'timeout = "{timeout}"',
        f'jitter = "{JITTER:g}s"',
        "",
    ]
    for i in range(sources):
        url = f"http://{feed_ip(i)}:{port}/feeds/{i}/rss.xml"
        lines += [f"[sources.s{i:03d}]", 'type = "feed"', f'url = "{url}"', ""]
    lines += [
        "[alerts.nato]",
        "query = 'NATO troops Ukraine'",
        'notify = ["hook"]',
        "",
        "[notifiers.hook]",
        'type = "webhook"',
        f'url = "http://127.0.0.1:{port}/hook"',
        'timeout = "10s"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def sample(
    pid: int, db_path: Path, t0: float, started: float, every: float, stuck_after: float, cpu: float
) -> Sample:
    rss, fds = proc_rss_mb(pid), len(os.listdir(f"/proc/{pid}/fd"))
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        (fetches, ok) = db.execute("SELECT count(*), coalesce(sum(ok), 0) FROM fetches").fetchone()
        # A fetch is logged when it ends, so a hung one shows as a source whose next fetch is
        # overdue: due (last start + every, or the backoff's next attempt, as the daemon
        # resumes), plus a tick of the schedule, its jitter, the fetch deadline and a margin.
        now = time.time()
        db.row_factory = sqlite3.Row
        late = [
            now - _due(row, started, every)
            for row in db.execute("SELECT last_fetched_at, failures, next_attempt_at FROM sources")
        ]
        stuck = sum(1 for d in late if d > every + JITTER + stuck_after)
        overdue = sum(1 for d in late if d > every + JITTER)
        (posts,) = db.execute("SELECT count(*) FROM posts").fetchone()
        (matches,) = db.execute("SELECT count(*) FROM matches").fetchone()
        status = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
    finally:
        db.close()
    return Sample(time.monotonic() - t0, cpu, rss, fds, fetches, ok, stuck, overdue, posts, matches,
                  status.get("sent", 0), status.get("pending", 0))  # fmt: skip


def _due(row: sqlite3.Row, started: float, every: float) -> float:
    """When the daemon has this source due, as it resumes (monitor.schedule.next_due_at)."""
    from monitor.archive.sqlite import iso_to_epoch
    from monitor.schedule import next_due_at

    if not row["last_fetched_at"]:
        return started  # never fetched: due since the daemon started
    return iso_to_epoch(next_due_at(row, every)) or started


def stats(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as resp:
        return json.loads(resp.read())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    p.add_argument("--sources", type=int, default=500)
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--every", default="30s", help="the sources' schedule (default 30s)")
    p.add_argument("--timeout", default="5s", help="[monitor] timeout (default 5s)")
    p.add_argument("--margin", type=float, default=30.0, help="stuck: deadline + this (s)")
    p.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds not judged (default: a fifth, at least 60)",
    )
    p.add_argument("--max-rss-growth", type=float, default=0.25, help="after warm-up (0.25)")
    p.add_argument("--max-fd-growth", type=int, default=32, help="after warm-up (32)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--lifetime", type=float, default=3600.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.sources, args.seed, args.lifetime))
        return 0
    if not 1 <= args.sources <= 60_000:
        p.error("--sources must be between 1 and 60000")

    sys.path.insert(0, str(REPO))
    from monitor.config_types import parse_duration

    deadline = 3 * parse_duration(args.timeout)  # monitor/pipeline.py: the whole collection
    every = parse_duration(args.every)
    stuck_after = deadline + args.margin
    # The first rounds fill the archive and the caches; flatness is judged after them.
    warmup = max(60.0, args.duration / 5) if args.warmup is None else args.warmup
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--sources", str(args.sources), "--seed",
         str(args.seed), "--lifetime", str(args.duration + 300)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    daemon = None
    failures: list[str] = []
    samples: list[Sample] = []
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        if not ready:
            raise SystemExit("the origin did not start")
        info = json.loads(server.stdout.readline())
        port = info["port"]
        cfg = work / "soak.toml"
        write_config(cfg, port, args.sources, args.every, args.timeout)
        log = work / "daemon.log"
        started = time.time()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), cwd=work,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        print(f"soak: {args.sources} sources {dict(info['profiles'])}, every {args.every}, "
              f"timeout {args.timeout} (deadline {deadline:g}s; stuck after {stuck_after:g}s), "
              f"{args.duration:g}s; work dir {work}")  # fmt: skip
        print(f"{'t(s)':>6} {'cpu%':>5} {'RSS MB':>7} {'fds':>4} {'fetches':>8} {'ok':>7} {'stuck':>5} "
              f"{'overdue':>7} {'posts':>6} {'matches':>7} {'sent':>5} {'pending':>7}")  # fmt: skip
        t0 = time.monotonic()
        n = int(args.duration / args.sample)
        cpu_before, at = 0.0, t0
        for k in range(1, n + 1):
            time.sleep(max(0.0, t0 + k * args.sample - time.monotonic()))
            if daemon.poll() is not None:
                failures.append(f"the daemon exited with {daemon.returncode}; see {log}")
                break
            cpu_now, now = proc_cpu_seconds(daemon.pid), time.monotonic()
            busy = 100 * (cpu_now - cpu_before) / (now - at)
            cpu_before, at = cpu_now, now
            s = sample(daemon.pid, work / "soak.db", t0, started, every, stuck_after, busy)
            samples.append(s)
            print(f"{s.t:6.0f} {s.cpu:5.0f} {s.rss_mb:7.1f} {s.fds:4d} {s.fetches:8d} {s.ok:7d} {s.stuck:5d} "
                  f"{s.overdue:7d} {s.posts:6d} {s.matches:7d} {s.sent:5d} {s.pending:7d}",
                  flush=True)  # fmt: skip
        origin_stats = stats(port)
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                code = daemon.wait(timeout=60)
                if code != 0:
                    failures.append(f"the daemon exited with {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                failures.append("the daemon did not stop within 60 s of SIGTERM")
        text = log.read_text(errors="replace")
        for needle in ("Traceback", "database is locked"):
            if needle in text:
                failures.append(f"{needle!r} in the daemon's log {log}")
        db = sqlite3.connect(work / "soak.db")
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        errors = Counter(
            re.sub(r"\d+", "N", e or "")[:70]
            for (e,) in db.execute("SELECT error FROM fetches WHERE ok = 0").fetchall()
        )
        db.close()
        if integrity != "ok":
            failures.append(f"integrity_check: {integrity}")
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()

    failures += judge(samples, warmup, args.max_rss_growth, args.max_fd_growth)
    if samples:
        last = samples[-1]
        print(f"\norigin answers: {dict(sorted(origin_stats['answers'].items()))}")
        print(f"webhook: {origin_stats['hook_posts']} POSTs of {origin_stats['hook_ids']} ids, "
              f"{origin_stats['hook_ids_posted_twice']} ids POSTed more than once (after a 500 "
              f"or a slow answer that timed out, a retry is expected)")  # fmt: skip
        print(f"fetches: {last.fetches} ({last.fetches / last.t:.1f}/s), {last.ok} ok")
        print("failed fetches by reason:")
        for reason, count in errors.most_common(12):
            print(f"  {count:6d}  {reason}")
    if not args.keep and not failures:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    for f in failures:
        print(f"FAIL: {f}")
    print("soak: ok" if not failures else f"soak: {len(failures)} problems")
    return 1 if failures else 0


def judge(samples: list[Sample], warmup: float, rss_growth: float, fd_growth: int) -> list[str]:
    """Flat: the last third of the run against the start after the warm-up (memory) or the
    peak before it (descriptors)."""
    out = []
    if any(s.stuck for s in samples):
        out.append(f"stuck sources seen: max {max(s.stuck for s in samples)}")
    after = [s for s in samples if s.t >= warmup]
    if len(after) < 3:
        return out + ["too few samples after the warm-up to judge memory and descriptors"]
    third = max(1, len(after) // 3)
    first, last = after[:third], after[-third:]
    rss0 = sum(s.rss_mb for s in first) / len(first)
    rss1 = sum(s.rss_mb for s in last) / len(last)
    # Descriptors follow the bursts of due sources, so the baseline is the peak before the end.
    fd0, fd1 = max(s.fds for s in samples[: len(samples) - third]), max(s.fds for s in last)
    print(f"\nafter the {warmup:g}s warm-up: RSS {rss0:.1f} → {rss1:.1f} MB "
          f"({(rss1 / rss0 - 1) * 100:+.1f}%), max fds {fd0} → {fd1}; "
          f"RSS range {min(s.rss_mb for s in after):.1f}–{max(s.rss_mb for s in after):.1f} MB, "
          f"fds {min(s.fds for s in after)}–{max(s.fds for s in after)}")  # fmt: skip
    if rss1 > rss0 * (1 + rss_growth):
        out.append(f"memory grew {rss0:.1f} → {rss1:.1f} MB after the warm-up")
    if fd1 > fd0 + fd_growth:
        out.append(f"descriptors grew {fd0} → {fd1} after the warm-up")
    return out


if __name__ == "__main__":
    sys.exit(main())
