"""Benchmark: matching 10 saved queries against a pass of 200 new posts, on growing archives.

    python bench/bench_match.py [--skip-1m] [--reps 7] [--rebuild]

Archives of 10k, 100k and 1M synthetic posts are built once with the monitor's own Store and
cached in bench/out/ (gitignored). Each repetition saves 200 fresh posts in a transaction, times
`match_pending` on them (it indexes them, in the archive's index and in the connection's
temporary index of the pass, and runs the queries on the latter), then the
alternatives on the archive's own index — a rowid range (BETWEEN), an IN list of the pass's
rowids, no restriction at all — and rolls back, so the archive is reused unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from _corpus import Corpus  # noqa: E402

from monitor.archive.sqlite import SCHEMA, Store  # noqa: E402
from monitor.config import Config, parse_config  # noqa: E402
from monitor.match import match_pending  # noqa: E402
from monitor.models import Media, Post  # noqa: E402

OUT = BENCH / "out"
ARCHIVE_FORMAT = 1  # bump when the generated posts change, so cached archives are rebuilt
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
PASS = 200
ARCHIVE_SOURCES = [f"outlet-{i:02d}" for i in range(50)]
PASS_SOURCE = "pass-source"

# Ten alerts as a desk would write them: words, phrases, prefixes, OR, NOT, NEAR, a field,
# several scripts, and accent-blind spellings.
ALERTS = {
    "nato-troops-ukraine": "NATO troops Ukraine",
    "troupes-au-sol": '"troupes au sol" ukraine',
    "voyska-nato": "НАТО войск* Украин*",
    "lavrov-macron": "lavrov NEAR(macron troops, 12)",
    "erdogan-title": "title:Erdogan (Ankara OR Fidan)",
    "ceasefire": "ceasefire OR cessez-le-feu OR ateşkes -Hamas",
    "deployment": "deploy* NATO -exercise",
    "rates": '"interest rates" OR Zinsen OR инфляция',
    "elysee": "elysee macron",
    "drone-strikes": "drone (strike OR attack) infrastructure",
}


def bench_config(database: str) -> Config:
    sources = {
        sid: {"type": "feed", "url": f"https://{sid}.example/rss.xml"} for sid in ARCHIVE_SOURCES
    }
    sources[PASS_SOURCE] = {"type": "feed", "url": "https://pass.example/rss.xml"}
    raw = {
        "monitor": {"database": database},
        "sources": sources,
        "alerts": {aid: {"query": q, "notify": []} for aid, q in ALERTS.items()},
    }
    return parse_config(raw, env={})


def make_posts(corpus: Corpus, prefix: str, start: int, n: int) -> list[Post]:
    posts = []
    base = 1_700_000_000
    for k in range(start, start + n):
        lang, title, paragraphs = corpus.article()
        url = f"https://{prefix}.example/{lang}/{k}.html"
        posts.append(
            Post(
                external_id=url,
                url=url,
                title=title,
                text="\n\n".join(paragraphs),
                author=f"{prefix} desk",
                kind="article",
                published_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + k * 60)),
                lang=lang,
                media=(
                    Media(
                        url=f"https://{prefix}.example/img/{k}.jpg",
                        medium="image",
                        role="thumbnail",
                    ),
                ),
            )
        )
    return posts


def archive_path(label: str) -> Path:
    # Keyed on the schema's text, not SCHEMA_VERSION: a column added without a version bump
    # must not reuse an archive that lacks it.
    schema = hashlib.sha1(SCHEMA.encode()).hexdigest()[:8]
    return OUT / f"archive-{label}-{schema}-f{ARCHIVE_FORMAT}.db"


def fill(store: Any, size: int) -> None:
    """`size` posts of the seeded corpus into `store` (either backend), as passes save them:
    the same posts for the same size, so two archives built apart can be compared."""
    store.sync_sources((sid, "feed", None) for sid in ARCHIVE_SOURCES + [PASS_SOURCE])
    corpus = Corpus(seed=size, tail=20_000)
    started = time.perf_counter()
    batch, chunk = 20_000, 100  # posts per transaction, posts per save (one source's pass)
    done = 0
    while done < size:
        n = min(batch, size - done)
        with store.transaction() as db:
            for off in range(0, n, chunk):
                sid = ARCHIVE_SOURCES[((done + off) // chunk) % len(ARCHIVE_SOURCES)]
                store.save_posts(db, sid, make_posts(corpus, sid, done + off, min(chunk, n - off)))
            store.index_pending(db)
        done += n
        rate = done / (time.perf_counter() - started)
        print(f"  {done:>9,} posts  {rate:,.0f} posts/s", end="\r", flush=True)


def build_archive(label: str, size: int) -> Path:
    """The cached archive of `size` posts, built with Store.save_posts in big transactions."""
    path = archive_path(label)
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob(f"archive-{label}-*"):  # built for another schema: never reused
        stale.unlink()
    partial = path.with_suffix(".partial")
    print(f"building the {label} archive in {path} (once; cached afterwards)...", flush=True)
    store = Store(partial)
    started = time.perf_counter()
    fill(store, size)
    return finish_archive(store, partial, path, started)


def finish_archive(store: Store, partial: Path, path: Path, started: float) -> Path:
    """A SQLite archive built at `partial`, checkpointed and analyzed, moved to `path`."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("ANALYZE")
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    os.replace(partial, path)
    print(
        f"\n  built in {time.perf_counter() - started:.0f}s, {path.stat().st_size / 2**20:,.0f} MiB"
    )
    return path


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def measure(path: Path, reps: int, warmup: int) -> dict[str, float]:
    config = bench_config(str(path))
    source = config.sources[PASS_SOURCE]
    fts = [config.queries[aid].fts() for aid in config.alerts]
    store = Store(path)
    (posts_n,) = store.db.execute("SELECT count(*) FROM posts").fetchone()
    corpus = Corpus(seed=posts_n + 99, tail=20_000)
    samples: dict[str, list[float]] = defaultdict(list)
    for rep in range(warmup + reps):
        posts = make_posts(corpus, PASS_SOURCE, rep * PASS, PASS)
        # One transaction per repetition, as the pipeline's, rolled back so the archive is
        # the same for the next repetition and the next run.
        store.db.execute("BEGIN IMMEDIATE")
        try:
            saved = store.save_posts(store.db, source.id, posts)
            assert saved.new == PASS and saved.rev_lo is not None and saved.rev_hi is not None
            t0 = time.perf_counter()
            found = match_pending(store.db, store, config)
            t_match = _ms(t0)
            # FTS5 keeps the new rows' terms in memory until a savepoint or the commit, then
            # writes them and does its merge work. Flush here, untimed, before the queries on
            # the archive's index: that cost belongs to the commit, and since every repetition
            # is rolled back it would land on the same merge each time (15 ms or 1 ms
            # depending on where the cached index happens to be).
            store.db.execute("SAVEPOINT flush")
            store.db.execute("RELEASE flush")

            t0 = time.perf_counter()
            for q in fts:
                store.db.execute(
                    "SELECT rowid FROM posts_fts WHERE posts_fts MATCH ? AND rowid BETWEEN ? AND ?",
                    (q, saved.rev_lo, saved.rev_hi),
                ).fetchall()
            t_between = _ms(t0)

            revs = list(range(saved.rev_lo, saved.rev_hi + 1))
            marks = ",".join("?" * len(revs))
            t0 = time.perf_counter()
            for q in fts:
                store.db.execute(
                    f"SELECT rowid FROM posts_fts WHERE posts_fts MATCH ? AND rowid IN ({marks})",
                    (q, *revs),
                ).fetchall()
            t_in = _ms(t0)

            t0 = time.perf_counter()
            full_rows = 0
            for q in fts:
                full_rows += len(
                    store.db.execute(
                        "SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?", (q,)
                    ).fetchall()
                )
            t_full = _ms(t0)
        finally:
            store.db.execute("ROLLBACK")
        if rep >= warmup:
            for key, value in (
                ("match", t_match),
                ("between", t_between),
                ("in", t_in),
                ("full", t_full),
                ("hits", sum(map(len, found.matches.values()))),
                ("full_rows", full_rows),
            ):
                samples[key].append(value)
    store.close()
    out = {k: statistics.median(v) for k, v in samples.items()}
    out["posts"] = posts_n
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description="Time match_pending on archives of 10k, 100k and 1M posts."
    )
    p.add_argument("--skip-1m", action="store_true", help="leave out the 1M-post archive")
    p.add_argument(
        "--sizes", nargs="+", choices=list(SIZES), help="archives to measure (default: all)"
    )
    p.add_argument("--reps", type=int, default=7, help="repetitions per archive (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first (default 1)")
    p.add_argument("--rebuild", action="store_true", help="rebuild cached archives")
    args = p.parse_args()
    if args.reps < 1 or args.warmup < 0:
        p.error("--reps must be at least 1 and --warmup at least 0")
    labels = args.sizes or [s for s in SIZES if not (args.skip_1m and s == "1M")]
    results = {}
    for label in labels:
        if args.rebuild:
            archive_path(label).unlink(missing_ok=True)
        path = build_archive(label, SIZES[label])
        results[label] = measure(path, args.reps, args.warmup)
        r = results[label]
        print(
            f"  {label}: match_pending {r['match']:.2f} ms, full scan {r['full']:.1f} ms",
            flush=True,
        )
    print(
        f"\n{len(ALERTS)} alerts × a pass of {PASS} new posts; medians of {args.reps} "
        f"(+{args.warmup} warm-up); SQLite {__import__('sqlite3').sqlite_version}\n"
    )
    head = (
        f"{'archive':>9} {'match_pending ms':>14} {'matches':>7} {'BETWEEN sql ms':>14} "
        f"{'IN-list sql ms':>14} {'full scan ms':>12} {'full-scan rows':>14}"
    )
    print(head)
    print("-" * len(head))
    for r in results.values():
        print(
            f"{int(r['posts']):>9,} {r['match']:>14.2f} {r['hits']:>7.0f} {r['between']:>14.2f} "
            f"{r['in']:>14.2f} {r['full']:>12.1f} {r['full_rows']:>14,.0f}"
        )
    if len(results) > 1:
        first, last = results[labels[0]], results[labels[-1]]
        print(
            f"\n{labels[-1]} / {labels[0]}: match_pending ×{last['match'] / first['match']:.2f}, "
            f"BETWEEN sql ×{last['between'] / first['between']:.1f}, "
            f"IN-list ×{last['in'] / first['in']:.1f}, full scan ×{last['full'] / first['full']:.1f}"
            " (flat means ≈ ×1)"
        )


if __name__ == "__main__":
    main()
