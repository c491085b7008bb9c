"""Benchmark: the daemon's CPU per conditional poll, `monitor run` with N warm sources, all 304.

    python bench/bench_daemon.py [--sources 2000] [--every 1m] [--measure 300]
    python bench/bench_daemon.py --profile          # and where that CPU goes (py-spy)
    python bench/bench_daemon.py --compare /path/to/another/checkout   # A/B, side by side

`monitor run` runs as a real process, on the default SQLite archive, against bench/_server.py
(each feed on its own loopback address, ETag and Last-Modified on every answer). It first
fetches every feed (200), then polls each every `--every`; a poll is a conditional GET that
gets 304. The measurement starts once the origin has answered one 304 to every source (the
first warm cycle) and lasts --measure seconds: the daemon's CPU time (utime + stime of
/proc/PID/stat, all its threads) over that window, divided by the polls the origin answered
in it, beside the `fetches` rows the daemon logged in the same window. Everything the daemon
does in the window counts: heartbeats, outbox ticks, checkpoints.

With --profile, py-spy samples the daemon over the window (`py-spy record --nonblocking`, so
the process is not stopped for each sample; `pip install py-spy`), and the samples are added
up by where the time goes: the innermost frame of a sample decides its part (HTTP, store,
event loop, APScheduler, logging, the pipeline's own code), and the monitor's main steps are
also given inclusively. The CPU figure of a profiled run includes py-spy's reading of the
process, so take it from a run without --profile.

With --compare, a second daemon runs another checkout at the same time, against an origin of
its own: on a machine shared with other work the figure moves by ±20% from run to run with
the load, and two daemons measured side by side see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from bench_poll import Server, cpu_seconds  # noqa: E402

TARGET_MS = 1.0  # issue 14: at most 1.0 ms of CPU per conditional poll
UNITS = {"s": 1, "m": 60, "h": 3600}

# Where a sample's innermost frame lies → the part it is charged to (first match wins).
PARTS = [
    ("HTTP", re.compile(r"monitor/(transport|http|netguard)\.py|httpx/|h11/|idna/|ssl\.py")),
    ("store", re.compile(r"monitor/archive/|sqlite3|monitor/match\.py|monitor/health\.py")),
    ("APScheduler", re.compile(r"apscheduler/|tzlocal/|zoneinfo/")),
    ("logging", re.compile(r"logging/")),
    ("event loop", re.compile(r"asyncio/|selectors\.py|socket\.py")),
    ("pipeline, sources", re.compile(r"monitor/(pipeline|schedule|sources/)")),
]
# The monitor's main steps, counted inclusively (a sample counts for each of them it is in).
STEPS = [
    ("_run_source", "the job of one source (all of a poll but the scheduler's)"),
    ("run_source", "pipeline.run_source"),
    ("collect", "the source's collect (HTTP, conditional GET)"),
    ("fetch_start", "store.fetch_start (the last fetch row and the source's state)"),
    ("transaction", "the fetch's transaction (store.transaction)"),
    ("finish_fetch_ok", "store.finish_fetch_ok"),
    ("match_pending", "match_pending"),
    ("newer_fetch_saved", "store.newer_fetch_saved"),
    ("save_posts", "store.save_posts"),
    ("fetched", "metrics.fetched"),
    ("info", "log.info"),
    ("_process_jobs", "APScheduler's _process_jobs"),
    ("_run_job_success", "APScheduler's _run_job_success"),
]


def seconds(text: str) -> float:
    return float(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else float(text)


def polls(server: Server) -> tuple[int, int]:
    stats = server.stats()
    return stats.get("200", 0), stats.get("304", 0)


def logged(db: Path, since: str, until: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(
            "SELECT count(*) FROM fetches WHERE started_at >= ? AND started_at < ?",
            (since, until),
        ).fetchone()[0]


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", type=int, default=2000)
    p.add_argument("--items", type=int, default=20, help="items per feed (default 20)")
    p.add_argument("--every", default="1m")
    p.add_argument("--jitter", default="6s", help="the [monitor] jitter (default 6s)")
    p.add_argument("--measure", type=float, default=300.0, help="seconds of steady state")
    p.add_argument("--warmup-limit", type=float, default=900.0, help="give up after this")
    p.add_argument("--profile", action="store_true", help="sample the daemon with py-spy")
    p.add_argument("--src", type=Path, default=BENCH.parent, help="checkout of the monitor to run")
    p.add_argument(
        "--compare",
        type=Path,
        help="another checkout, run side by side (same load) as a second daemon",
    )
    p.add_argument("--keep", type=Path, help="keep the archives, logs and profile here")
    p.add_argument("--json", type=Path, help="also write the figures here (bench_summary.py)")
    args = p.parse_args()
    if seconds(args.every) * 3 > args.measure:
        print("note: --measure covers fewer than three cycles of --every", file=sys.stderr)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if args.profile and not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    lifetime = args.warmup_limit + args.measure + 600
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-daemon-")).resolve()
    srcs = [("this", args.src)] + ([("compare", args.compare)] if args.compare else [])
    load = os.getloadavg()
    print(f"{args.sources} sources × {args.items} items, every {args.every}, jitter "
          f"{args.jitter}, on {sys.executable}; work dir {work}; load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    arms: list[Arm] = []
    try:
        for name, src in srcs:
            arms.append(Arm(name, src, work / name, args, lifetime))
            print(f"  {name}: `monitor run` from {src}", flush=True)
        started = time.time()
        # The warm-up: every source fetched once (200), then polled once (304), in every arm.
        while not all(arm.warm(args.sources) for arm in arms):
            if time.time() - started > args.warmup_limit:
                raise SystemExit(f"no full warm cycle after {args.warmup_limit:g}s; see {work}")
            time.sleep(1)
        print(f"warm after {time.time() - started:.0f} s; measuring {args.measure:g} s", flush=True)
        profiler = None
        if args.profile:
            profiler = subprocess.Popen(
                [spy, "record", "--pid", str(arms[0].daemon.pid), "--duration",
                 str(int(args.measure)), "--rate", "200", "--nonblocking", "--format", "raw",
                 "--output", str(arms[0].work / "profile.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for arm in arms:
            arm.begin()
        time.sleep(args.measure)
        for arm in arms:
            arm.end()
        if profiler is not None:
            profiler.wait(120)
    finally:
        for arm in arms:
            arm.close()
    end_load = os.getloadavg()
    print(f"load average at the end: {end_load[0]:.2f} {end_load[1]:.2f} {end_load[2]:.2f}")
    for arm in arms:
        arm.report()
    if args.json:
        args.json.write_text(json.dumps({
            "sources": args.sources, "every": args.every, "measure": args.measure,
            "load": [load[0], end_load[0]],
            "arms": {arm.name: {"per_poll_ms": arm.per_poll(),
                                "polls": sum(arm.polls1) - sum(arm.polls0)} for arm in arms},
        }, indent=1))  # fmt: skip
    if len(arms) == 2:
        a, b = (arm.per_poll() for arm in arms)
        print(f"\nthis / compare: {a / b:.2f}× the CPU per poll, measured side by side")
    if args.profile:
        report_profile(arms[0].work / "profile.txt")


class Arm:
    """One daemon, its origin and its archive; two arms run at once see the same load."""

    def __init__(
        self, name: str, src: Path, work: Path, args: argparse.Namespace, lifetime: float
    ) -> None:
        self.name, self.src, self.work = name, src, work
        self.server = Server(args.sources, args.items, 0.0, lifetime)
        work.mkdir(parents=True, exist_ok=True)
        self.db = work / "monitor.db"
        for old in work.glob("monitor.db*"):
            old.unlink()
        cfg = work / "m.toml"
        lines = [
            f'[monitor]\ndatabase = "{self.db}"\nevery = "{args.every}"\n'
            f'jitter = "{args.jitter}"\ntimeout = "20s"\nallow_private = true\n'
        ]
        for i, url in enumerate(self.server.urls):
            lines.append(f'[sources.s{i:05d}]\ntype = "feed"\nurl = "{url}"\n')
        cfg.write_text("\n".join(lines))
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        self.log = work / "run.log"
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"), env=env, cwd=work,
        )  # fmt: skip

    def alive(self) -> None:
        if self.daemon.poll() is not None:
            raise SystemExit(f"the daemon exited {self.daemon.returncode}; see {self.log}")

    def warm(self, sources: int) -> bool:
        self.alive()
        ok, not_modified = polls(self.server)
        return ok >= sources and not_modified >= sources

    def begin(self) -> None:
        self.t0, self.cpu0, self.polls0 = (
            time.time(),
            cpu_seconds(self.daemon.pid),
            polls(self.server),
        )

    def end(self) -> None:
        self.t1, self.cpu1, self.polls1 = (
            time.time(),
            cpu_seconds(self.daemon.pid),
            polls(self.server),
        )
        self.alive()

    def close(self) -> None:
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        self.server.close()

    def per_poll(self) -> float:
        user, system = (self.cpu1[i] - self.cpu0[i] for i in (0, 1))
        n = sum(self.polls1) - sum(self.polls0)
        return (user + system) / max(n, 1) * 1000

    def report(self) -> None:
        n, other = self.polls1[1] - self.polls0[1], self.polls1[0] - self.polls0[0]
        user, system = (self.cpu1[i] - self.cpu0[i] for i in (0, 1))
        cpu, span = user + system, self.t1 - self.t0
        rows = logged(self.db, iso(self.t0), iso(self.t1))
        per = self.per_poll()
        print(f"\n{self.name} ({self.src}): {span:.0f} s of steady state, {n} polls answered "
              f"304 and {other} other answers ({(n + other) / span:.1f}/s); {rows} fetches "
              "logged by the daemon")  # fmt: skip
        print(f"daemon CPU: {cpu:.2f} s ({cpu / span * 100:.1f}% of a core; user {user:.2f} s, "
              f"system {system:.2f} s)")  # fmt: skip
        verdict = "met" if per <= TARGET_MS else "NOT met"
        if n + other == 0:
            verdict = "no poll in the window: measure longer than --every"
        print(f"CPU per conditional poll: {per:.3f} ms (target ≤ {TARGET_MS:g} ms) — {verdict}")


def report_profile(raw: Path) -> None:
    """py-spy's collapsed stacks (`frame;frame;... count`), added up by part and by step."""
    parts: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf = frames[-1]
        leaves[re.sub(r":\d+\)$", ")", leaf)] += n
        part = next((name for name, rx in PARTS if rx.search(leaf)), "other")
        parts[part] += n
        names = {f.split(" (", 1)[0].strip() for f in frames}
        names |= {name.rsplit(".", 1)[-1] for name in names}  # `Store.transaction` → `transaction`
        for step, _ in STEPS:
            if step in names:
                steps[step] += n
    if not total:
        print("\nprofile: no samples (is the daemon idle, or py-spy not allowed to attach?)")
        return
    print(f"\nprofile: {total} samples, by the innermost frame's part")
    for name, n in parts.most_common():
        print(f"  {name:20s} {n / total * 100:5.1f}%")
    print("\nthe monitor's steps (inclusive: a sample counts for each step it is in)")
    for step, what in STEPS:
        if steps[step]:
            print(f"  {steps[step] / total * 100:5.1f}%  {what}")
    print("\nthe 25 busiest innermost frames")
    for leaf, n in leaves.most_common(25):
        print(f"  {n / total * 100:5.1f}%  {leaf[:110]}")


if __name__ == "__main__":
    main()
