"""Benchmark: does `monitor run` keep time? Mean interval, drift and burst width of N sources.

    python bench/bench_schedule.py [--sources 2000] [--every 1m] [--jitter 6s] [--duration 3600]
    python bench/bench_schedule.py --src /path/to/another/checkout   # the same, for older code

The daemon runs as a real process against bench/_server.py (each feed on its own loopback
address) for --duration seconds, then is stopped with SIGTERM; the figures come from the
`fetches` table it wrote (start times, to the second). Per source: fetches, and the mean
interval from its first fetch to its last. A cycle is each `every` of the run (centred on the
first fetch, plus k × every): its burst width is the span of the fetches that fall in it, all
of them and the middle 98 %; its drift, how far each source's k-th fetch is from its first
fetch plus k × every, on average. With jitter spread around fixed slots, the mean
is `every`, the drift stays within half the jitter and the burst width does not grow; with
jitter added to each run (before the fix) the mean is every + jitter/2 and both grow.
"""

from __future__ import annotations

import argparse
import calendar
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from bench_poll import Server  # noqa: E402

UNITS = {"s": 1, "m": 60, "h": 3600}


def seconds(text: str) -> float:
    return float(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else float(text)


def epoch(iso: str) -> float:
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", type=int, default=2000)
    p.add_argument("--items", type=int, default=5, help="items per feed (default 5)")
    p.add_argument("--every", default="1m")
    p.add_argument("--jitter", default="6s", help="the [monitor] jitter (default 6s)")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds to run (default 3600)")
    p.add_argument("--src", type=Path, default=BENCH.parent, help="checkout of the monitor to run")
    p.add_argument("--keep", type=Path, help="keep the archive and log in this directory")
    p.add_argument("--report", type=Path, help="only report on the archive of an earlier run")
    args = p.parse_args()
    every = seconds(args.every)
    if args.report:
        report(args.report, every, args.duration)
        return
    server = Server(args.sources, args.items, 0.0, args.duration + 600)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-schedule-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "monitor.db"
    cfg = work / "m.toml"
    lines = [
        f'[monitor]\ndatabase = "{db}"\nevery = "{args.every}"\njitter = "{args.jitter}"\n'
        'timeout = "20s"\nallow_private = true\n'
    ]
    for i, url in enumerate(server.urls):
        lines.append(f'[sources.s{i:05d}]\ntype = "feed"\nurl = "{url}"\n')
    cfg.write_text("\n".join(lines))
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    log = work / "run.log"
    print(f"{args.sources} sources, every {args.every}, jitter {args.jitter}, "
          f"{args.duration:g} s of `monitor run` from {args.src}; archive and log in {work}",
          flush=True)  # fmt: skip
    started = time.time()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env, cwd=work,
    )  # fmt: skip
    try:
        while (left := started + args.duration - time.time()) > 0:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited {daemon.returncode}; see {log}")
            time.sleep(min(left, 60))
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        server.close()
    report(db, every, args.duration)


def report(db: Path, every: float, duration: float) -> None:
    con = sqlite3.connect(db)
    runs: dict[str, list[float]] = defaultdict(list)
    for sid, at in con.execute("SELECT source_id, started_at FROM fetches ORDER BY started_at"):
        runs[sid].append(epoch(at))
    failed = con.execute("SELECT count(*) FROM fetches WHERE NOT ok").fetchone()[0]
    counts = [len(t) for t in runs.values()]
    means = [(t[-1] - t[0]) / (len(t) - 1) for t in runs.values() if len(t) > 1]
    gaps = [b - a for t in runs.values() for a, b in zip(t, t[1:], strict=False)]
    print(
        f"\n{len(runs)} sources fetched, {sum(counts)} fetches ({failed} failed) in {duration:g} s"
    )
    print(f"fetches per source: min {min(counts)}, max {max(counts)}; "
          f"an exact schedule gives {int(duration // every) + 1}")  # fmt: skip
    print(f"mean interval per source: mean {statistics.fmean(means):.2f} s, "
          f"min {min(means):.2f}, max {max(means):.2f} (target {every:g})")  # fmt: skip
    q = statistics.quantiles(gaps, n=100)
    print(f"single intervals: min {min(gaps):g}, p1 {q[0]:g}, median {q[49]:g}, "
          f"p99 {q[98]:g}, max {max(gaps):g} s")  # fmt: skip
    # A cycle is a minute (an `every`) of the run, centred on when the first cycle began:
    # the fetches that fall in it are that cycle's burst, however the sources have drifted.
    t0 = min(t[0] for t in runs.values())
    cycles: dict[int, list[float]] = defaultdict(list)
    for t in runs.values():
        for at in t:
            cycles[round((at - t0) / every)].append(at)
    print("\n cycle | fetches | burst width (s) | p1-p99 width (s) | drift mean (s)")
    last = max(cycles)
    for k in sorted({0, 1, 2, 4, 7, 8, 15, 16, 30, 45, last // 2, last - 1}):
        if k not in cycles or len(cycles[k]) < 2:
            continue
        at = sorted(cycles[k])
        cut = statistics.quantiles(at, n=100)
        drift = [t[k] - (t[0] + k * every) for t in runs.values() if len(t) > k]
        print(f" {k + 1:5d} | {len(at):7d} | {at[-1] - at[0]:15.0f} | {cut[98] - cut[0]:16.0f} | "
              f"{statistics.fmean(drift):14.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
