"""Benchmark: one source-health check (`check_sources`) over many sources, against its budget.

    python bench/bench_source_health.py [--sources 500] [--fetches 200] [--reps 5]

The daemon runs the check once a minute and `monitor fetch` once a pass, in a write
transaction: it should cost a small fraction of a second however long the fetch log is.
Also times what an Apprise notifier adds to a command that reads its URLs (the plugins load).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.archive.sqlite import Store  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.source_health import check_sources  # noqa: E402

TARGET_MS = 100.0  # per check, for 500 sources


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=500)
    ap.add_argument("--fetches", type=int, default=200, help="fetch-log rows per source")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    n = args.sources
    folder = tempfile.mkdtemp(prefix="bench-health-")
    raw = {
        "monitor": {"database": f"{folder}/m.db"},
        "sources": {f"s{i}": {"type": "feed", "url": f"https://example.org/{i}"} for i in range(n)},
        "alerts": {"dark": {"failing_for": "6h", "silent_for": "3d"}},
    }
    config = parse_config(raw, env={})
    store = Store(config.database)
    store.sync_sources((sid, "feed", None) for sid in config.sources)
    with store.transaction() as db:
        db.executemany(
            "INSERT INTO fetches (source_id, started_at, finished_at, ok) VALUES (?, ?, ?, 1)",
            [(f"s{i}", f"2026-11-{1 + j % 28:02d}T00:00:00Z", "x")
             for j in range(args.fetches) for i in range(n)],
        )  # fmt: skip
        db.execute("UPDATE sources SET last_ok_at = '2026-12-01T00:00:00Z', "
                   "last_new_at = '2026-11-01T00:00:00Z'")  # fmt: skip
        db.execute("UPDATE sources SET failing_since = '2026-11-30T00:00:00Z', failures = 3 "
                   "WHERE rowid % 10 = 0")  # fmt: skip

    def once() -> tuple[float, int]:
        t0 = time.perf_counter()
        with store.transaction() as db:
            events = check_sources(db, store, config)
        return (time.perf_counter() - t0) * 1000, len(events)

    first_ms, opened = once()
    steady = [once()[0] for _ in range(args.reps)]
    store.close()

    code = (
        "from monitor.config import parse_config\n"
        "parse_config({'notifiers': {'d': {'type': 'apprise', 'urls': ['json://127.0.0.1/x']}}},"
        " env={}, need_notifiers=%s)\n"
    )
    loads = {}
    for need in (False, True):
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code % need], cwd=REPO, check=True)
            runs.append((time.perf_counter() - t0) * 1000)
        loads[need] = statistics.median(runs)

    print(f"sources {n}, fetch-log rows {n * args.fetches}")
    print(f"{'measure':<44} {'ms':>8}  target")
    print(f"{'first check (opens ' + str(opened) + ' episodes)':<44} {first_ms:>8.1f}")
    print(f"{'steady check (median of ' + str(args.reps) + ')':<44} "
          f"{statistics.median(steady):>8.1f}  < {TARGET_MS:g}")  # fmt: skip
    print(f"{'read an apprise config, URLs not checked':<44} {loads[False]:>8.1f}")
    print(f"{'read an apprise config, URLs checked':<44} {loads[True]:>8.1f}")


if __name__ == "__main__":
    main()
