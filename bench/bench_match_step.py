"""Benchmark: what a match costs, replayed without the pass around it.

    python bench/bench_match_step.py ARCHIVE CONFIG [--reps 9] [--batch 1000] [--json FILE]

bench_poll.py's figure for issue 14's 25 µs target is the CPU of a whole cold pass with 10
broad alerts minus the pass with none run just before it, per match. The ~18,000 matches
cost about 0.3 s of a pass of about 1.8 s whose CPU moves by ±0.2 s between rounds on a 2-core
VM, so that figure swung from 0.1 to 26 µs between runs of the same code (bench/README.md).

This replays only what the alerts add. ARCHIVE is a cold pass's archive (bench_poll's run with
no alerts: its posts saved, nothing matched); CONFIG holds the alerts (bench_poll's 10 broad
ones). Each repetition copies the posts into a fresh archive in batches of `--batch`, in the
order they were saved, and times `match_pending` on each batch in its own transaction, as a
pass does (runner.MATCH_BATCH): index the batch, run the queries, record the matches. It does
so once with CONFIG's alerts and once with none, alternately; CPU per match is the median of
the paired differences. Copying the posts is not timed, and a profile of the two whole passes
differs in `match_pending` only (cProfile, 2026-12-08), so this is the same difference with
the rest of the pass's noise left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from monitor.archive.sqlite import Store  # noqa: E402
from monitor.config import Config, load_config  # noqa: E402
from monitor.match import match_pending  # noqa: E402
from monitor.runner import MATCH_BATCH  # noqa: E402


def replay(archive: Path, config: Config, work: Path, batch: int) -> tuple[float, int]:
    """CPU seconds of match_pending over ARCHIVE's posts in batches, and the matches made."""
    db_path = work / "replay.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    store = Store(str(db_path))
    try:
        db = store.db
        db.execute("ATTACH DATABASE ? AS src", (f"file:{archive}?mode=ro",))
        with store.transaction():
            db.execute("INSERT INTO sources SELECT * FROM src.sources")
        revs = [r[0] for r in db.execute("SELECT rev FROM src.posts ORDER BY rev")]
        cpu, matches = 0.0, 0
        for i in range(0, len(revs), batch):
            chunk = revs[i : i + batch]
            with store.transaction():
                db.execute(
                    "INSERT INTO posts SELECT * FROM src.posts WHERE rev BETWEEN ? AND ?",
                    (chunk[0], chunk[-1]),
                )
            started = time.process_time()
            with store.transaction() as tx:
                found = match_pending(tx, store, config)
            cpu += time.process_time() - started
            matches += sum(map(len, found.matches.values()))
        db.execute("DETACH DATABASE src")
        return cpu, matches
    finally:
        store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive", type=Path, help="a cold pass's archive, nothing matched in it")
    p.add_argument("config", type=Path, help="a configuration with the alerts to replay")
    p.add_argument("--reps", type=int, default=9, help="pairs of replays (default 9)")
    p.add_argument("--batch", type=int, default=MATCH_BATCH, help="posts a batch (the pass's)")
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args()

    alerts = load_config(args.config)
    if not alerts.alerts:
        raise SystemExit(f"{args.config}: no alerts to replay")
    bare = dataclasses.replace(alerts, alerts={}, queries={})
    pairs: list[float] = []
    with_alerts: list[float] = []
    without: list[float] = []
    made = 0
    with tempfile.TemporaryDirectory(prefix="bench-match-step-") as tmp:
        work = Path(tmp)
        src = work / "archive.db"
        shutil.copy(args.archive, src)  # the original may be in use; read a copy
        for _ in range(args.reps):
            none_cpu, _ = replay(src, bare, work, args.batch)
            heavy_cpu, made = replay(src, alerts, work, args.batch)
            if not made:
                raise SystemExit("the alerts matched nothing: no cost per match to measure")
            without.append(none_cpu)
            with_alerts.append(heavy_cpu)
            pairs.append((heavy_cpu - none_cpu) / made)
    per_match = statistics.median(pairs) * 1e6
    print(f"{made:,} matches over {len(alerts.alerts)} alerts, in batches of {args.batch}")
    print(f"match steps with the alerts: median {statistics.median(with_alerts):.3f} s of CPU; "
          f"with none: {statistics.median(without):.3f} s")  # fmt: skip
    print(f"CPU per match (median of {args.reps} pairs): {per_match:.2f} µs "
          f"(pairs from {min(pairs) * 1e6:.2f} to {max(pairs) * 1e6:.2f})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "matches": made, "us_per_match": per_match,
            "us_pairs": [x * 1e6 for x in pairs],
            "cpu_alerts": with_alerts, "cpu_none": without,
        }))  # fmt: skip


if __name__ == "__main__":
    main()
