"""Benchmark: `monitor search` latency on PostgreSQL beside SQLite, on archives of 10k to 1M posts.

    python bench/bench_pgsearch.py [--sizes 100k 1M] [--reps 15] [--explain]

Both archives of a size hold the same posts: bench_match.py's synthetic multilingual posts
(bench/_corpus.py, the same seed, sources and order as its archives), written once in bulk —
COPY into PostgreSQL, executemany into SQLite, each with the monitor's own search index
(monitor.archive.pgtext's tsvector; the folded FTS5 rows of Store._index) — not through a
fetch pass. They are cached in bench/out/ (gitignored): the PostgreSQL cluster in
bench/out/pgsearch-cluster/ (initdb once, started again on the same data each run, stopped
at the end) and a SQLite file per size, rebuilt only when the schema or the generated posts
change. Building 1M takes some minutes per backend.

Each archive is left as a live one would be. PostgreSQL's is a schema-5 archive as the
monitor leaves one (`posts_rev` above every rev, nothing in `unmatched`), VACUUM ANALYZEd
after the bulk load as autovacuum keeps a live archive (the visibility map set: on
PostgreSQL 15.13 and later that no longer spares a count over the GIN index its heap pages,
which EXPLAIN (ANALYZE, BUFFERS) shows, but it sets the hint bits a first reader would).
Then the newest 2,000 posts are edited and saved again through the monitor (save_posts, as
a fetch pass saves a changed post), on both backends: on PostgreSQL their rows wait in the
GIN index's pending list (fastupdate, on by default), about half of the 4 MB it holds before
an insert flushes it, which every search reads through (a few milliseconds per statement).

Each query is timed as `monitor search` runs it: `search()` for 20 hits with their snippets,
and apart, the count of all matches that the CLI adds when the 20 were not all ("20 of N
results"), and the two as the CLI runs them (`search_counted`: on PostgreSQL one pass over
the matches gives the count and the newest 1,000, then ranked). p50 (and p95) over --reps runs after one warm-up, SQLite
beside PostgreSQL, the load average after each query's runs (the machine's other work moves
these figures), the match counts of both, and how many of the 20 hits are the same posts on
both. `--explain` prints PostgreSQL's plans (EXPLAIN (ANALYZE, BUFFERS)) of the three-word
query's statements at each size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from _corpus import Corpus  # noqa: E402
from bench_match import (  # noqa: E402
    ARCHIVE_SOURCES,
    OUT,
    PASS_SOURCE,
    SIZES,
    finish_archive,
    make_posts,
)

from monitor.archive import open_archive, pgtext  # noqa: E402
from monitor.archive import postgres as pg_archive  # noqa: E402
from monitor.archive.search import count, search, search_counted  # noqa: E402
from monitor.archive.sqlite import SCHEMA, Store, _to_json, now_iso, post_id  # noqa: E402
from monitor.models import Post  # noqa: E402

FORMAT = 1  # bump when the generated rows change, so cached archives are rebuilt
CLUSTER = OUT / "pgsearch-cluster"
# A server sized as an operator would size one for an archive of millions of posts (the
# index and the hot rows in its own cache), within what this 2-core, 24 GB machine can spare.
SETTINGS = "-c shared_buffers=1GB -c maintenance_work_mem=512MB -c work_mem=32MB"
LIMIT = 20
# Posts saved through the monitor after the bulk load (live_tail): about half of the 4 MB that
# a GIN index's pending list holds by default before an insert flushes it into the index.
LIVE = 2_000
CHUNK = 100  # posts per source in a row, as bench_match.fill saves them

QUERIES = {
    "three words": "NATO troops Ukraine",
    "common word": "government",
    "phrase": '"troupes au sol"',
    "prefix, Cyrillic": "НАТО войск*",
    "NEAR": "NEAR(macron troops, 12)",
    "field + OR": "title:Erdogan (Ankara OR Fidan)",
}
COLUMNS = (
    "id, source_id, external_id, url, author, title, text, kind, published_at, first_seen_at,"
    " updated_at, version, lang, media, extra, transcript, rev"
)


def rows(size: int) -> Iterator[tuple[Any, ...]]:
    """The posts rows of an archive of `size`, as save_posts writes them (revs 1..size)."""
    corpus = Corpus(seed=size, tail=20_000)
    seen = now_iso()
    rev = 0
    for start in range(0, size, CHUNK):
        sid = ARCHIVE_SOURCES[(start // CHUNK) % len(ARCHIVE_SOURCES)]
        for p in make_posts(corpus, sid, start, min(CHUNK, size - start)):
            rev += 1
            media = _to_json([m.to_dict() for m in p.media])
            yield (post_id(sid, p.external_id), sid, p.external_id, p.url, p.author, p.title,
                   p.text, p.kind, p.published_at, seen, seen, 1, p.lang, media, "{}", None,
                   rev)  # fmt: skip


def _key(text: str) -> str:
    return hashlib.sha1(f"{text}\n{FORMAT}".encode()).hexdigest()[:8]


def progress(label: str, done: int, started: float) -> None:
    rate = done / (time.perf_counter() - started)
    print(f"  {label}: {done:>9,} posts  {rate:,.0f} posts/s", end="\r", flush=True)


def build_sqlite(label: str, size: int) -> Path:
    """The cached SQLite archive of `size` posts."""
    path = OUT / f"pgsearch-{label}-{_key(SCHEMA)}.db"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob(f"pgsearch-{label}-*"):
        stale.unlink()
    partial = path.with_suffix(".partial")
    print(f"building the {label} SQLite archive in {path} (once)...", flush=True)
    started = time.perf_counter()
    store = Store(partial)
    store.sync_sources((sid, "feed", None) for sid in ARCHIVE_SOURCES + [PASS_SOURCE])
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        with store.transaction() as db:
            db.executemany(f"INSERT INTO posts ({COLUMNS}) VALUES ({', '.join('?' * 17)})", batch)
            store._index(db, [(r[16], r[5], r[6], r[15], r[4]) for r in batch])
        batch.clear()

    for n, row in enumerate(rows(size), 1):
        batch.append(row)
        if len(batch) == 10_000:
            flush()
            progress("SQLite", n, started)
    if batch:
        flush()
    with store.transaction() as db:
        db.execute("UPDATE search_state SET indexed_rev = ?", (size,))
    return finish_archive(store, partial, path, started)


def build_pg(server: Any, label: str, size: int) -> str:
    """The URL of the cached PostgreSQL archive of `size` posts (a database of its own)."""
    import psycopg

    schema = f"{pg_archive.SCHEMA_VERSION}\n" + "\n".join(pg_archive.SCHEMA)
    name = f"pgsearch_{label.lower()}_{_key(schema)}"
    with server.admin() as con:
        names = {r[0] for r in con.execute("SELECT datname FROM pg_database")}
        if name in names:
            return server.url(name)
        for stale in names:
            if stale.startswith(f"pgsearch_{label.lower()}_"):
                con.execute(f'DROP DATABASE "{stale}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}_partial"')
    print(f"building the {label} PostgreSQL archive in {CLUSTER} (once)...", flush=True)
    started = time.perf_counter()
    url = server.url(f"{name}_partial")
    store = open_archive(url)  # the monitor makes its schema, as on first use
    store.sync_sources((sid, "feed", None) for sid in ARCHIVE_SOURCES + [PASS_SOURCE])
    store.close()
    # Two connections, one COPY each, fed from one pass over the generated posts; the GIN
    # index is made once at the end, which is much faster than growing it row by row.
    posts = psycopg.connect(url)
    fts = psycopg.connect(url)
    # The rows are consistent by construction: no foreign-key trigger per row.
    posts.execute("SET session_replication_role = replica")
    fts.execute("DROP INDEX posts_fts_doc")
    with (
        posts.cursor().copy(f"COPY posts ({COLUMNS}) FROM STDIN") as copy_posts,
        fts.cursor().copy("COPY posts_fts (rev, doc) FROM STDIN") as copy_fts,
    ):
        for n, row in enumerate(rows(size), 1):
            copy_posts.write_row(row)
            doc = pgtext.tsvector((row[5], row[6], row[15], row[4]), row[16])
            copy_fts.write_row((row[16], doc))
            if n % 10_000 == 0:
                progress("PostgreSQL", n, started)
    posts.commit()
    fts.commit()
    print(f"\n  rows in {time.perf_counter() - started:.0f}s; indexing...", flush=True)
    fts.execute(next(s for s in pg_archive.SCHEMA if "posts_fts_doc" in s))
    fts.execute("UPDATE search_state SET indexed_rev = %s", (size,))
    # A schema-5 archive as the monitor leaves one: the next save's rev above every post's,
    # and no post waiting for the alerts (COPY wrote around save_posts and its `unmatched`).
    fts.execute("SELECT setval('posts_rev', %s)", (size,))
    (waiting,) = fts.execute("SELECT count(*) FROM unmatched").fetchone()
    assert waiting == 0, waiting
    fts.commit()
    posts.close()
    fts.autocommit = True
    fts.execute("VACUUM ANALYZE")
    fts.close()
    with server.admin() as con:
        con.execute(f'ALTER DATABASE "{name}_partial" RENAME TO "{name}"')
        (mb,) = con.execute(f"SELECT pg_database_size('{name}') / 1048576").fetchone()
    print(f"  built in {time.perf_counter() - started:.0f}s, {mb:,} MiB")
    return server.url(name)


def live_tail(store: Store) -> None:
    """The newest LIVE posts edited and saved again through the monitor (save_posts, then
    index_pending, as a fetch pass does), once per cached archive: on PostgreSQL their new
    rows wait in the GIN index's pending list, as in a live archive between two flushes."""
    (edited,) = store.db.execute("SELECT count(*) FROM posts WHERE version > 1").fetchone()
    if edited >= LIVE:
        return
    rows = store.db.execute(
        "SELECT source_id, external_id, url, title, text, author, kind, published_at, lang "
        "FROM posts ORDER BY rev DESC LIMIT ?",
        (LIVE,),
    ).fetchall()
    by_source: dict[str, list[Post]] = {}
    for r in rows:
        post = Post(r[1], r[2], r[3], f"{r[4]} Updated.", r[5], r[6], r[7], r[8])
        by_source.setdefault(r[0], []).append(post)
    for source_id, posts in by_source.items():
        with store.transaction() as db:
            store.save_posts(db, source_id, posts)
            store.index_pending(db)


def pct(times: list[float], q: float) -> float:
    times = sorted(times)
    return times[min(len(times) - 1, round(q * (len(times) - 1)))]


class Timed(NamedTuple):
    searches: list[float]  # search(): 20 hits with snippets
    counts: list[float]  # count() alone
    totals: list[float]  # search_counted(), both as `monitor search` runs them
    ids: list[str]
    total: int
    load: float  # the load average (1 min) after the runs


def timed(store: Store, query: str, reps: int) -> Timed:
    """Times of `search()` (20 hits with snippets), of the count `monitor search` adds when
    the 20 are not all ("20 of 7,381 results"), and of the two as `monitor search` runs them
    (`search_counted`); the hits' ids, the count."""
    hits = search(store, query, limit=LIMIT)  # warm, as an analyst's second search finds it
    total = count(store, query)
    search_counted(store, query, limit=LIMIT)
    out = Timed([], [], [], [h.post["id"] for h in hits], total, 0.0)
    for _ in range(reps):
        t = time.perf_counter()
        search(store, query, limit=LIMIT)
        out.searches.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        count(store, query)
        out.counts.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        _, n = search_counted(store, query, limit=LIMIT)
        out.totals.append((time.perf_counter() - t) * 1000)
        assert n == total, (query, n, total)
    return out._replace(load=os.getloadavg()[0])


def explain(store: Any, query_text: str) -> None:
    """EXPLAIN ANALYZE of the statements a search runs on PostgreSQL, as the store sends them."""
    from monitor.query import parse_query

    query = parse_query(query_text)
    sent: list[tuple[str, Any]] = []
    con = store.db.con
    real = con.execute

    def capture(sql: Any, params: Any = None, **kw: Any) -> Any:
        sent.append((sql, params))
        return real(sql, params, **kw)

    con.execute = capture
    try:
        store.search_rows(query, None, None, LIMIT)
        store.search_count(query, None, None)
    finally:
        del con.execute
    for sql, params in sent:
        print(f"\n  {' '.join(sql.split())}")
        plan = real(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params).fetchall()
        print("\n".join("    " + r[0] for r in plan))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["100k", "1M"])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the three-word query")
    args = p.parse_args()
    from tests.pgserver import start_cluster

    results = []
    with start_cluster(keep=CLUSTER, settings=SETTINGS) as server:
        for label in args.sizes:
            sqlite = Store(build_sqlite(label, SIZES[label]), create=False)
            pg = open_archive(build_pg(server, label, SIZES[label]), create=False)
            for store in (sqlite, pg):
                live_tail(store)
            if args.explain:
                print(f"\n{label}: the three-word query on PostgreSQL")
                explain(pg, QUERIES["three words"])
            for name, query in QUERIES.items():
                s = timed(sqlite, query, args.reps)
                g = timed(pg, query, args.reps)
                results.append((label, name, s, g))
            sqlite.close()
            pg.close()
    print(f"\nmonitor search: search() for {LIMIT} hits, count() alone, and the two as "
          f"`monitor search` runs them (search_counted: the count when the {LIMIT} are not "
          f"all; on PostgreSQL one pass for both), "
          f"p50 ms over {args.reps} runs (p95 for PG's total), load average after each row")  # fmt: skip
    head = (f"{'archive':<8} {'query':<17} {'SQLite search':>13} {'count':>6} {'total':>6} "
            f"{'PG search':>10} {'count':>6} {'total':>6} {'p95':>6} "
            f"{'matches SQLite':>14} {'PG':>7} {'top 20':>6} {'load':>5}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for label, name, s, g in results:
        shared = len(set(s.ids) & set(g.ids))
        print(f"{label:<8} {name:<17} {pct(s.searches, .5):>13.1f} {pct(s.counts, .5):>6.1f} "
              f"{pct(s.totals, .5):>6.1f} {pct(g.searches, .5):>10.1f} {pct(g.counts, .5):>6.1f} "
              f"{pct(g.totals, .5):>6.1f} {pct(g.totals, .95):>6.1f} "
              f"{s.total:>14,} {g.total:>7,} {shared:>6} {g.load:>5.2f}")  # fmt: skip
    print("\ntarget (reported, not asserted): a three-word query at most 50 ms on PostgreSQL, "
          "flat from 100k to 1M posts")  # fmt: skip


if __name__ == "__main__":
    main()
