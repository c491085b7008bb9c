"""I/O: copy a SQLite archive into a PostgreSQL one (`monitor migrate --to`), history and outbox included."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from monitor.archive import pgtext
from monitor.archive.postgres import PgStore
from monitor.archive.sqlite import Store
from monitor.errors import ArchiveError

# In the order their references need. fetches and deliveries keep their ids and their order.
TABLES = ("sources", "posts", "post_versions", "transcript_segments", "matches",
          "source_episodes", "deliveries", "fetches")  # fmt: skip
BATCH = 2000


@dataclass
class Migrated:
    copied: dict[str, int] = field(default_factory=dict)  # new rows per table
    pending: int = 0  # deliveries waiting to be sent, on the target
    mark: int = 0  # the search mark the target has


def migrate(source: Store, target: PgStore) -> Migrated:
    """Copy what `source` holds that `target` lacks, in one transaction on the target.

    Ids, revisions, delivery states, attempts and next attempts are kept, so that a pending
    delivery goes out once, under the webhook-id it was made with, and a second run adds
    nothing. The target must be new, or hold only what an earlier run copied from this
    archive: revisions from two archives can't be merged into one order.
    """
    out = Migrated()
    src = source.db
    with target.transaction() as db:
        _refuse_foreign(src, db)
        copied_posts = _new_ids(src, db, "posts", "id")
        for table in TABLES:
            columns = _common_columns(src, db, table)
            if table == "sources":
                out.copied[table] = _copy_sources(src, db, columns)
            elif table == "transcript_segments":
                # No key of its own: a post's segments come with the post, once.
                out.copied[table] = _copy(src, db, table, columns, only_posts=copied_posts)
            else:
                out.copied[table] = _copy(src, db, table, columns)
        (mark,) = src.execute("SELECT indexed_rev FROM search_state").fetchone()
        (had,) = db.execute("SELECT indexed_rev FROM search_state").fetchone()
        out.mark = max(mark, had)
        db.execute("UPDATE search_state SET indexed_rev = ?", (out.mark,))
        _index(db)
        # Saved and not yet matched there (above its mark): the first pass here matches them.
        waiting = [(r[1],) for r in src.execute("SELECT id, rev FROM posts WHERE rev > ?", (mark,))
                   if r[0] in copied_posts]  # fmt: skip
        if waiting:
            db.executemany("INSERT INTO unmatched (rev) VALUES (?) ON CONFLICT DO NOTHING", waiting)
        # New rows of the target number on from the copied ones.
        for table, column in (("fetches", "id"), ("deliveries", "seq"), ("source_episodes", "id")):
            db.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
            )
        db.execute(
            "SELECT setval('posts_rev', (SELECT coalesce(max(rev), 0) + 1 FROM posts), false)"
        )
        (out.pending,) = db.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'"
        ).fetchone()
    return out


def _refuse_foreign(src: sqlite3.Connection, db: Any) -> None:
    """ArchiveError when the target holds posts this archive does not have, under their revs."""
    theirs = {}
    for row in db.execute("SELECT id, rev FROM posts"):
        theirs[row[0]] = row[1]
    if not theirs:
        return
    ours = dict(src.execute("SELECT id, rev FROM posts").fetchall())
    foreign = sum(1 for pid, rev in theirs.items() if ours.get(pid) != rev)
    if foreign:
        raise ArchiveError(
            f"the PostgreSQL archive already holds {foreign} posts that are not this archive's:"
            " `monitor migrate` copies into a new archive (or one it filled before)"
        )


def _common_columns(src: sqlite3.Connection, db: Any, table: str) -> list[str]:
    ours = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    theirs = {
        r[0]
        for r in db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema()",
            (table,),
        )
    }
    return [c for c in ours if c in theirs]


def _new_ids(src: sqlite3.Connection, db: Any, table: str, key: str) -> set[str]:
    have = {r[0] for r in db.execute(f"SELECT {key} FROM {table}")}
    return {r[0] for r in src.execute(f"SELECT {key} FROM {table}") if r[0] not in have}


def _quoted(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _copy(
    src: sqlite3.Connection,
    db: Any,
    table: str,
    columns: list[str],
    only_posts: set[str] | None = None,
) -> int:
    """Insert the rows the target lacks (by its unique keys); how many were new."""
    if table == "deliveries":
        select = f"SELECT {_quoted(columns)}, rowid AS seq FROM deliveries ORDER BY rowid"
        insert_columns = [*columns, "seq"]
    else:
        order = " ORDER BY id" if table in ("fetches", "source_episodes") else ""
        select = f"SELECT {_quoted(columns)} FROM {table}{order}"
        insert_columns = columns
    marks = ", ".join("?" * len(insert_columns))
    # Straight to psycopg: the monitor's `?` form would also rewrite a column named rowid.
    sql = (
        f"INSERT INTO {table} ({_quoted(insert_columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    ).replace("?", "%s")
    post_column = columns.index("post_id") if only_posts is not None else -1
    added = 0
    cur = src.execute(select)
    while rows := cur.fetchmany(BATCH):
        values = [tuple(r) for r in rows]
        if only_posts is not None:
            values = [v for v in values if v[post_column] in only_posts]
        if not values:
            continue
        with db.con.cursor() as pg:
            pg.executemany(sql, values, returning=False)
            added += max(pg.rowcount, 0)
    return added


def _copy_sources(src: sqlite3.Connection, db: Any, columns: list[str]) -> int:
    """Sources, with their state: validators, cursors, failures, last fetch.

    A row the target has from a configuration sync alone (never fetched there) takes the
    archive's state; one the target fetched since keeps its own, which is newer."""
    others = [c for c in columns if c != "id"]
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in others)
    sql = (
        f"INSERT INTO sources ({_quoted(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates} "
        "WHERE sources.last_fetched_at IS NULL "
        "OR sources.last_fetched_at < excluded.last_fetched_at"
    )
    before = db.execute("SELECT count(*) FROM sources").fetchone()[0]
    rows = [tuple(r) for r in src.execute(f"SELECT {_quoted(columns)} FROM sources")]
    if rows:
        with db.con.cursor() as pg:
            pg.executemany(sql, rows)
    return db.execute("SELECT count(*) FROM sources").fetchone()[0] - before


def _index(db: Any) -> None:
    """Index the copied posts, as the PostgreSQL archive indexes each post it saves."""
    rows = db.execute(
        "SELECT p.rev, p.title, p.text, p.transcript, p.author FROM posts p "
        "LEFT JOIN posts_fts f ON f.rev = p.rev WHERE f.rev IS NULL"
    )
    while batch := rows.fetchmany(BATCH):
        docs = [(r[0], pgtext.tsvector(tuple(r)[1:], r[0])) for r in batch]
        with db.con.cursor() as pg:
            pg.executemany("INSERT INTO posts_fts (rev, doc) VALUES (%s, %s::tsvector)", docs)
