"""Benchmark: a `monitor fetch` pass over N local RSS feeds, cold and warm, beside rss2email.

    python bench/bench_poll.py [--feeds 200] [--items 30] [--reps 5] [--delay-ms 0] [--no-rss2email]

The feeds are served by bench/_server.py in its own process, each feed on its own loopback
address (127.0.0.2, 127.0.0.3, ...) like real outlets on their own hosts, so the monitor's
per-host limit (2) does not serialise the pass. Each tool runs as a whole process, timed from
outside; its CPU time and peak RSS come from wait4(). See bench/README.md for what each side
does.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

# A few alerts, so that a pass also runs the matching it always runs in production.
ALERTS = {
    "nato-troops-ukraine": "NATO troops Ukraine",
    "troupes-au-sol": '"troupes au sol" OR NEAR(OTAN troupes, 10)',
    "voyska-nato": "НАТО войск* -Песков",
}

TARGETS = {"cold": 10.0, "warm": 3.0, "rss_mb": 150.0}


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float


@dataclass
class Tool:
    name: str
    cold: list[Run] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)

    def median(self, phase: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in getattr(self, phase))

    def peak_mb(self) -> float:
        return max(r.rss_mb for r in self.cold + self.warm)


def measure(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float) -> Run:
    """Run `cmd` to completion; wall time, CPU and peak RSS of that one process (wait4)."""
    with open(log, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
        # The watchdog bounds a hung child; wait4 (not RUSAGE_CHILDREN) keeps the server's
        # own usage, and earlier children's peaks, out of this figure.
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}; log {log}:\n{tail}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


class Server:
    """bench/_server.py as a child process; it exits when our end of its stdin closes."""

    def __init__(self, feeds: int, items: int, delay_ms: float, lifetime: float) -> None:
        cmd = [sys.executable, str(BENCH / "_server.py"), "--feeds", str(feeds), "--items", str(items),
               "--delay-ms", str(delay_ms), "--lifetime", str(lifetime)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            raise SystemExit("the feed server did not start (see its stderr above)")
        info = json.loads(line)
        self.urls: list[str] = info["urls"]
        self.stats_url: str = info["stats"]
        self.bytes_per_feed: int = info["bytes_per_feed"]
        self.gzip_bytes_per_feed: int = info["gzip_bytes_per_feed"]

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.stats_url, timeout=10) as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def expect(server: Server, before: dict[str, int], status: str, n: int, what: str) -> None:
    """The run really fetched what we claim: n answers with `status` and nothing else."""
    after = server.stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("200", "304", "404")}
    want = {"200": 0, "304": 0, "404": 0, status: n}
    if delta != want:
        raise SystemExit(f"{what}: the server answered {delta}, expected {want}")


def monitor_config(path: Path, urls: list[str]) -> None:
    lines = [
        "[monitor]",
        'database = "monitor.db"',
        'timeout = "60s"',
        'user_agent = "outlet-monitor-bench/0.1"',
        "",
    ]
    for i, url in enumerate(urls):
        lines += [f"[sources.feed-{i:04d}]", 'type = "feed"', f'url = "{url}"', ""]
    for aid, query in ALERTS.items():
        lines += [
            f"[alerts.{aid}]",
            f"query = {json.dumps(query, ensure_ascii=False)}",
            "notify = []",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def r2e_config(r2e: str, path: Path, urls: list[str], env: dict[str, str]) -> None:
    """`r2e new`, then the [feed.NAME] sections `r2e add` would write (one process, not N)."""
    data = path.with_suffix(".json")
    subprocess.run(
        [r2e, "-c", str(path), "-d", str(data), "new", "you@example.org"],
        check=True, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    with open(path, "a", encoding="utf-8") as f:
        for i, url in enumerate(urls):
            f.write(f"\n[feed.feed-{i:04d}]\nurl = {url}\n")
    listed = subprocess.run(
        [r2e, "-c", str(path), "-d", str(data), "list"],
        check=True, env=env, capture_output=True, text=True, timeout=60,
    ).stdout.splitlines()  # fmt: skip
    if len(listed) != len(urls):
        raise SystemExit(f"rss2email lists {len(listed)} feeds, expected {len(urls)}")
    data.unlink()


def count_posts(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM posts").fetchone()[0]
    finally:
        con.close()


def count_seen(data: Path) -> int:
    return sum(len(f.get("seen", {})) for f in json.loads(data.read_text())["feeds"])


def main() -> None:
    p = argparse.ArgumentParser(
        description="Poll N local feeds with `monitor fetch` and rss2email."
    )
    p.add_argument("--feeds", type=int, default=200, help="number of feeds (default 200)")
    p.add_argument("--items", type=int, default=30, help="items per feed (default 30)")
    p.add_argument("--reps", type=int, default=5, help="cold+warm repetitions per tool (default 5)")
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="the server waits this long before each answer, standing for network "
                   "latency (default 0: bare loopback)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    p.add_argument("--no-rss2email", action="store_true", help="measure the monitor only")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the monitor (default: this one); it needs the monitor's "
        "dependencies, e.g. a venv made from the interpreter rss2email runs on",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="kill a run after this (s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()
    if args.reps < 1 or args.feeds < 1 or args.items < 1 or args.warmup < 0:
        p.error("--feeds, --items and --reps must be at least 1, --warmup at least 0")

    env = {
        k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG" and "proxy" not in k.lower()
    }
    mon_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # An installed monitor has its bytecode compiled (pip does it); a private cache dir gives
    # the checkout the same, without writing into the repo's tree.
    mon_env["PYTHONPYCACHEPREFIX"] = str(BENCH / "out" / "pycache")
    mon_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    r2e = None if args.no_rss2email else shutil.which("r2e")
    if not args.no_rss2email and r2e is None:
        print(
            "rss2email is not installed (`apt-get install -y rss2email`): measuring the monitor only.\n"
        )

    tmp = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    # The server's own bound: long enough for every run to hit its --timeout, and no longer.
    lifetime = 4 * (args.warmup + args.reps) * args.timeout + 600
    server = Server(args.feeds, args.items, args.delay_ms, lifetime)
    n_items = args.feeds * args.items
    try:
        print(
            f"{args.feeds} feeds × {args.items} items on {args.feeds} loopback addresses "
            f"({server.bytes_per_feed / 1024:.0f} KiB each, {server.gzip_bytes_per_feed / 1024:.0f} KiB gzipped); "
            f"server delay {args.delay_ms:g} ms; {args.reps} repetitions; {os.cpu_count()} CPUs\n"
            f"monitor on {_describe_python(args.python)}"
            + (f"; rss2email on {_describe_python(_script_python(r2e))}" if r2e else ""),
            flush=True,
        )
        cfg = tmp / "monitor.toml"
        monitor_config(cfg, server.urls)
        mon_cmd = [
            os.path.abspath(args.python),  # not resolved: a venv's python is a link
            "-m",
            "monitor",
            "fetch",
            "--config",
            str(cfg),
            "--no-alerts",
            "-q",
        ]
        tools = [Tool("monitor")]
        floor: list[Run] = []
        raw_floor: list[Run] = []
        if r2e:
            r2e_config(r2e, tmp / "r2e.cfg", server.urls, env)
            tools.append(Tool("rss2email"))
        for rep in range(args.warmup + args.reps):
            # Interleaved, so drift in the machine's load touches both tools alike; warm-up
            # rounds fill the OS and bytecode caches and are not counted.
            counted = rep >= args.warmup
            run_dir = tmp / f"rep{rep}"
            run_dir.mkdir()
            db = run_dir / "monitor.db"
            log = run_dir / "monitor.log"
            cmd = [*mon_cmd, "--db", str(db)]
            before = server.stats()
            cold = measure(cmd, run_dir, mon_env, log, args.timeout)
            expect(server, before, "200", args.feeds, f"monitor cold run {rep}")
            if (got := count_posts(db)) != n_items:
                raise SystemExit(f"monitor cold run {rep}: {got} posts stored, expected {n_items}")
            before = server.stats()
            warm = measure(cmd, run_dir, mon_env, log, args.timeout)
            expect(server, before, "304", args.feeds, f"monitor warm run {rep}")
            before = server.stats()
            bare = measure([os.path.abspath(args.python), str(BENCH / "_floor.py"), str(db),
                            str(run_dir / "floor.db")], run_dir, mon_env, log, args.timeout)  # fmt: skip
            expect(server, before, "304", args.feeds, f"floor run {rep}")
            before = server.stats()
            raw = measure([os.path.abspath(args.python), str(BENCH / "_floor.py"), str(db),
                           str(run_dir / "floor.db"), "--without-httpx"],
                          run_dir, mon_env, log, args.timeout)  # fmt: skip
            expect(server, before, "304", args.feeds, f"floor run without httpx {rep}")
            line = [
                f"monitor cold {cold.wall:.2f}s warm {warm.wall:.2f}s "
                f"(floor {bare.wall:.2f}s, without httpx {raw.wall:.2f}s)"
            ]
            if counted:
                tools[0].cold.append(cold)
                tools[0].warm.append(warm)
                floor.append(bare)
                raw_floor.append(raw)
            if r2e:
                shutil.copy(tmp / "r2e.cfg", run_dir / "r2e.cfg")
                data = run_dir / "r2e.json"
                cmd = [r2e, "-c", str(run_dir / "r2e.cfg"), "-d", str(data), "run", "--no-send"]
                log = run_dir / "r2e.log"
                before = server.stats()
                cold = measure(cmd, run_dir, env, log, args.timeout)
                expect(server, before, "200", args.feeds, f"rss2email cold run {rep}")
                if (got := count_seen(data)) != n_items:
                    raise SystemExit(
                        f"rss2email cold run {rep}: {got} entries seen, expected {n_items}"
                    )
                before = server.stats()
                warm = measure(cmd, run_dir, env, log, args.timeout)
                expect(server, before, "304", args.feeds, f"rss2email warm run {rep}")
                line.append(f"rss2email cold {cold.wall:.2f}s warm {warm.wall:.2f}s")
                if counted:
                    tools[1].cold.append(cold)
                    tools[1].warm.append(warm)
            label = f"rep {rep - args.warmup + 1}/{args.reps}" if counted else "warm-up"
            print(f"  {label}: {', '.join(line)}  (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        server.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(tools, n_items, floor, raw_floor)


def _script_python(script: str) -> str:
    """The interpreter named on a console script's #! line."""
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace")
    return first[2:].strip().split()[0] if first.startswith("#!") else "python3"


def _describe_python(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0], sys.base_prefix)"],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip
    return f"{python} (Python {out[0]} from {out[1]})" if len(out) == 2 else python


def report(tools: list[Tool], n_items: int, floor: list[Run], raw_floor: list[Run]) -> None:
    print()
    head = f"{'tool':<10} {'cold wall s':>11} {'items/s':>9} {'cold CPU s':>10} {'warm wall s':>11} {'warm CPU s':>10} {'peak RSS MB':>11}"
    print(head)
    print("-" * len(head))
    rows = {}
    for t in tools:
        cold, warm = t.median("cold", "wall"), t.median("warm", "wall")
        rows[t.name] = (
            cold,
            n_items / cold,
            t.median("cold", "cpu"),
            warm,
            t.median("warm", "cpu"),
            t.peak_mb(),
        )
        c, ips, ccpu, w, wcpu, rss = rows[t.name]
        print(
            f"{t.name:<10} {c:>11.2f} {ips:>9.0f} {ccpu:>10.2f} {w:>11.2f} {wcpu:>10.2f} {rss:>11.1f}"
        )
    m = rows["monitor"]
    if "rss2email" in rows:
        r = rows["rss2email"]
        print(
            f"{'r2e/mon':<10} {r[0] / m[0]:>10.1f}× {m[1] / r[1]:>8.1f}× {r[2] / m[2]:>9.1f}× "
            f"{r[3] / m[3]:>10.1f}× {r[4] / m[4]:>9.1f}× {r[5] / m[5]:>10.2f}×"
        )
    print("\n(medians; peak RSS is the highest of all runs of the tool; MB = MiB)")
    print("targets (reported, not asserted):")
    if "rss2email" in rows:
        r = rows["rss2email"]
        for label, ratio, goal in (
            ("cold", r[0] / m[0], TARGETS["cold"]),
            ("warm", r[3] / m[3], TARGETS["warm"]),
        ):
            verdict = "met" if ratio >= goal else "NOT met"
            print(f"  {label} ≥{goal:g}× faster than rss2email: {ratio:.1f}× — {verdict}")
    else:
        print("  cold/warm ratios: rss2email not measured")
    for what, runs in (
        ("Python, asyncio, httpx, sqlite3", floor),
        ("the same without httpx: h11 on asyncio streams", raw_floor),
    ):
        bare = statistics.median(r.wall for r in runs)
        print(
            f"  warm floor (bench/_floor.py: {what} and the same conditional GETs, nothing "
            f"else): {bare:.3f}s"
            + (
                f", {rows['rss2email'][3] / bare:.1f}× faster than rss2email"
                if "rss2email" in rows
                else ""
            )
        )
    verdict = "met" if m[5] < TARGETS["rss_mb"] else "NOT met"
    print(f"  monitor peak RSS < {TARGETS['rss_mb']:g} MB: {m[5]:.1f} MB — {verdict}")


if __name__ == "__main__":
    main()
