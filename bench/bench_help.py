"""Benchmark: wall time of `monitor --help` against the 0.2 s target, `python -c pass` as baseline.

    python bench/bench_help.py [--runs 10] [--importtime]

Each figure is the median of --runs fresh processes. The monitor is timed twice: with its
bytecode cached (what an installed copy does: pip compiles on install) and with
PYTHONDONTWRITEBYTECODE honoured as the calling environment has it (source compiled each time
when no cache exists).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TARGET_MS = 200.0


def time_runs(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, check=True, timeout=60)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def top_imports(cmd: list[str], env: dict[str, str], n: int = 12) -> list[tuple[int, str]]:
    """The slowest imports (cumulative µs) of one run, from -X importtime."""
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]],
        env=env, cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    p = argparse.ArgumentParser(description="Time `monitor --help` against the 0.2 s target.")
    p.add_argument("--runs", type=int, default=10, help="processes per figure (default 10)")
    p.add_argument("--importtime", action="store_true", help="list the slowest imports too")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be at least 1")

    base = {k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG"}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))
    cached = {k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # A private cache dir: the repo's tree stays untouched, and the first (untimed) run fills it.
    cached["PYTHONPYCACHEPREFIX"] = str(BENCH / "out" / "pycache")
    help_cmd = [sys.executable, "-m", "monitor", "--help"]
    subprocess.run(
        help_cmd, env=cached, cwd=REPO, stdout=subprocess.DEVNULL, check=True, timeout=60
    )
    subprocess.run([sys.executable, "-c", "pass"], env=cached, check=True, timeout=60)

    as_env = "unset" if "PYTHONDONTWRITEBYTECODE" not in base else "set"
    rows = [
        ("python -c pass", time_runs([sys.executable, "-c", "pass"], cached, args.runs)),
        ("monitor --help (bytecode cached)", time_runs(help_cmd, cached, args.runs)),
        (
            f"monitor --help (PYTHONDONTWRITEBYTECODE {as_env})",
            time_runs(help_cmd, base, args.runs),
        ),
    ]
    print(
        f"median of {args.runs} processes; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs\n"
    )
    width = max(len(name) for name, _ in rows)
    print(f"{'command':<{width}}  {'median ms':>9}  {'min ms':>7}  {'max ms':>7}")
    print("-" * (width + 30))
    for name, samples in rows:
        print(
            f"{name:<{width}}  {statistics.median(samples):>9.1f}  {min(samples):>7.1f}  {max(samples):>7.1f}"
        )
    pass_ms = statistics.median(rows[0][1])
    help_ms = statistics.median(rows[1][1])
    verdict = "met" if help_ms < TARGET_MS else "NOT met"
    print(
        f"\ntarget: monitor --help < {TARGET_MS:.0f} ms (bytecode cached): {help_ms:.0f} ms — {verdict}; "
        f"{help_ms - pass_ms:.0f} ms above the bare interpreter"
    )
    if args.importtime:
        print("\nslowest imports of `monitor --help` (cumulative ms, bytecode cached):")
        for us, name in top_imports(help_cmd, cached):
            print(f"  {us / 1000:7.1f}  {name}")


if __name__ == "__main__":
    main()
