"""Benchmark: `monitor search` latency on PostgreSQL beside SQLite, on growing archives.

    python bench/bench_pgsearch.py [--sizes 10k 100k 1M] [--reps 15]

Starts a throwaway PostgreSQL cluster (tests/pgserver.py: initdb + pg_ctl in a temporary
directory, durability off), builds an archive of each size there with the monitor's own
PgStore.save_posts and index_pending (the same synthetic posts as bench_match.py), and times
`monitor.archive.search.search` (limit 20, as `monitor search` shows) for a few queries,
beside the same on bench_match.py's cached SQLite archive of that size. The cluster and its
archives are thrown away at the end; building takes a while (about 1,000 posts/s here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_match import SIZES, build_archive, fill  # noqa: E402

from monitor.archive import open_archive  # noqa: E402
from monitor.archive.search import count, search  # noqa: E402
from monitor.archive.sqlite import Store  # noqa: E402

QUERIES = {
    "three words": "NATO troops Ukraine",
    "phrase": '"troupes au sol"',
    "prefix, Cyrillic": "НАТО войск*",
    "NEAR": "NEAR(macron troops, 12)",
    "field + OR": "title:Erdogan (Ankara OR Fidan)",
}


def build_pg(url: str, size: int) -> None:
    store = open_archive(url)
    started = time.perf_counter()
    fill(store, size)  # the same posts as the SQLite archive's
    store.db.execute("VACUUM ANALYZE")
    store.close()
    print(f"\n  built in {time.perf_counter() - started:.0f}s")


def timed(store: Store, query: str, reps: int) -> tuple[float, int, int]:
    search(store, query)  # warm the caches, as a second search by an analyst would find them
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        hits = search(store, query)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), len(hits), count(store, query)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["10k", "100k"])
    p.add_argument("--reps", type=int, default=15)
    args = p.parse_args()
    from tests.pgserver import start_cluster

    rows = []
    with start_cluster() as server:
        for label in args.sizes:
            print(f"building the {label} archive on PostgreSQL...", flush=True)
            with server.database("bench") as url:
                build_pg(url, SIZES[label])
                sqlite = Store(build_archive(label, SIZES[label]), create=False)
                pg = open_archive(url, create=False)
                for name, query in QUERIES.items():
                    ms_s, n_s, total_s = timed(sqlite, query, args.reps)
                    ms_p, n_p, total_p = timed(pg, query, args.reps)
                    rows.append((label, name, ms_s, ms_p, total_s, total_p))
                sqlite.close()
                pg.close()
    print(f"\n{'archive':<8} {'query':<18} {'SQLite ms':>10} {'PostgreSQL ms':>14} "
          f"{'matches SQLite':>15} {'matches PG':>11}")  # fmt: skip
    for label, name, ms_s, ms_p, total_s, total_p in rows:
        print(f"{label:<8} {name:<18} {ms_s:>10.1f} {ms_p:>14.1f} {total_s:>15,} {total_p:>11,}")
    print("\ntarget (reported, not asserted): a three-word query at most 50 ms on PostgreSQL, "
          "flat from 100k to 1M posts")  # fmt: skip


if __name__ == "__main__":
    main()
