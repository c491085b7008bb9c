"""Benchmark: issue 14's figures in one run, as the README's benchmark table.

    python bench/bench_summary.py                 # about 30 minutes on 2 cores
    python bench/bench_summary.py --reps 1 --warm-reps 1 --measure 120   # a quicker look

Runs, one after the other on a machine left alone:
1. `bench_poll.py --reps R` on 200 feeds × 30 items, one host and 200 hosts: the monitor with 3
   alerts, with none and with 10 broad ones, cold and warm, beside rss2email and newsboat;
2. `bench_poll.py --hosts many --no-heavy --no-newsboat --feeds 2000 --items 20`: the warm
   pass at scale against rss2email (newsboat's warm reload, which downloads every feed again,
   is 45× slower than the monitor's: leaving it out saves ten minutes a round);
3. `bench_daemon.py`: `monitor run` with 2,000 warm sources every minute, CPU per poll.

Each writes its medians with `--json`; this script prints them as the README's table (wall
seconds, CPU seconds in brackets) and every target of issue 14 beside its figure. The raw
outputs stay in `bench/out/summary-*.txt`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
sys.path.insert(0, str(BENCH))
from bench_daemon import TARGET_MS  # noqa: E402
from bench_poll import TARGETS, best_wall  # noqa: E402


def step(name: str, args: list[str]) -> dict:
    """Run one benchmark script, its output teed to bench/out/summary-NAME.txt; its JSON."""
    OUT.mkdir(exist_ok=True)
    doc, log = OUT / f"summary-{name}.json", OUT / f"summary-{name}.txt"
    doc.unlink(missing_ok=True)
    print(f"\n== {name}: {' '.join(args)}", flush=True)
    started = time.time()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-u", *args, "--json", str(doc)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
        if proc.wait():
            raise SystemExit(f"{name} failed (exit {proc.returncode}); see {log}")
    print(f"== {name}: {time.time() - started:.0f} s", flush=True)
    return json.loads(doc.read_text())


def cell(tool: dict, phase: str) -> str:
    wall, cpu = tool.get(phase), tool.get(f"{phase}_cpu")
    return "" if wall is None else f"{wall:.2f} ({cpu:.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3, help="rounds of the 200-feed runs (default 3)")
    p.add_argument("--warm-reps", type=int, default=3, help="rounds at 2,000 feeds (default 3)")
    p.add_argument("--measure", type=float, default=300.0, help="daemon steady state, seconds")
    p.add_argument("--feeds", type=int, default=200, help="feeds of the first runs (200)")
    p.add_argument("--scale", type=int, default=2000, help="feeds of the warm runs and sources "
                   "of the daemon (2,000)")  # fmt: skip
    args = p.parse_args()

    poll = step("poll", [str(BENCH / "bench_poll.py"), "--reps", str(args.reps),
                         "--feeds", str(args.feeds)])  # fmt: skip
    scale = step("warm-at-scale", [str(BENCH / "bench_poll.py"), "--hosts", "many",
                                   "--no-heavy", "--no-newsboat", "--feeds", str(args.scale),
                                   "--items", "20", "--reps", str(args.warm_reps),
                                   "--warmup", "0"])  # fmt: skip
    daemon = step("daemon", [str(BENCH / "bench_daemon.py"), "--measure", str(args.measure),
                             "--sources", str(args.scale)])  # fmt: skip

    one, many = poll["layouts"]["one"], poll["layouts"]["many"]
    n = poll["feeds"]
    print(f"\n| {n} feeds × {poll['items']} items, wall s (CPU s) | one host: cold "
          f"| one host: warm | {n} hosts: cold | {n} hosts: warm |")  # fmt: skip
    print("|---|---|---|---|---|")
    rows = [("monitor, 3 alerts", "monitor"), ("monitor, no alerts", "no alerts"),
            (f"monitor, 10 alerts ({many['10 alerts']['matches']:,.0f} matches)", "10 alerts"),
            ("rss2email", "rss2email"), ("newsboat", "newsboat")]  # fmt: skip
    for label, name in rows:
        if name in one:
            print(f"| {label} | {cell(one[name], 'cold')} | {cell(one[name], 'warm')} "
                  f"| {cell(many[name], 'cold')} | {cell(many[name], 'warm')} |")  # fmt: skip
    per_poll = daemon["arms"]["this"]["per_poll_ms"]
    print(f"\nload average over the {n}-feed rounds {poll['load'][0]:.1f}–{poll['load'][1]:.1f}"
          f", at {scale['feeds']:,} feeds {scale['load'][0]:.1f}–{scale['load'][1]:.1f}, "
          f"daemon {min(daemon['load']):.1f}–{max(daemon['load']):.1f}")  # fmt: skip

    print("\ntargets (issue 14; reported, not asserted):")

    def verdict(label: str, value: float, goal: float, above: bool = True, unit: str = "×") -> None:
        ok = value >= goal if above else value <= goal
        print(f"  {label}: {value:.2f}{unit} (target {'≥' if above else '≤'} {goal:g}{unit}) "
              f"— {'met' if ok else 'NOT met'}")  # fmt: skip

    for where, lay in (("one host", one), (f"{n} hosts", many)):
        mon, heavy, none = lay["monitor"], lay["10 alerts"], lay["no alerts"]
        for anchor, goal in (("rss2email", "cold_r2e"), ("newsboat", "cold_newsboat")):
            if anchor in lay:
                verdict(f"{where}, cold vs {anchor}", lay[anchor]["cold"] / mon["cold"],
                        TARGETS[goal])  # fmt: skip
                bound = lay[anchor]["cold"] / best_wall(mon["cold_cpu"], poll["cores"])
                print(f"    (the most its CPU allows on {poll['cores']} cores: {bound:.2f}×)")
                if served := mon.get("cold_server_cpu"):
                    both = best_wall(mon["cold_cpu"] + served, poll["cores"])
                    print(f"    (with the feed server's {served:.2f} s of CPU on the same "
                          f"cores: {lay[anchor]['cold'] / both:.2f}×)")  # fmt: skip
        if "rss2email" in lay:
            verdict(f"{where}, 10 alerts cold vs rss2email",
                    lay["rss2email"]["cold"] / heavy["cold"], TARGETS["heavy_r2e"])  # fmt: skip
        verdict(f"{where}, 10 alerts / none (wall)", heavy["cold"] / none["cold"],
                TARGETS["heavy_over_none"], above=False)  # fmt: skip
        per_match = poll["us_per_match"]["one" if where == "one host" else "many"]
        verdict(f"{where}, CPU per match (whole passes, in pairs)", per_match,
                TARGETS["us_per_match"], above=False, unit=" µs")  # fmt: skip
        replayed = poll.get("us_per_match_step", {}).get("one" if where == "one host" else "many")
        if replayed is not None:
            verdict(f"{where}, CPU per match (the match step replayed)", replayed,
                    TARGETS["us_per_match"], above=False, unit=" µs")  # fmt: skip
    big = scale["layouts"]["many"]
    if "rss2email" in big:
        verdict(f"{scale['feeds']:,} feeds, warm vs rss2email", big["rss2email"]["warm"] / big["monitor"]["warm"],
                TARGETS["warm_r2e"])  # fmt: skip
        print(f"    (by CPU: {big['rss2email']['warm_cpu'] / big['monitor']['warm_cpu']:.2f}×)")
    if daemon["arms"]["this"]["polls"]:
        verdict("daemon, CPU per conditional poll", per_poll, TARGET_MS, above=False, unit=" ms")
    else:
        print("  daemon: no poll in the window (--measure shorter than a cycle)")


if __name__ == "__main__":
    main()
