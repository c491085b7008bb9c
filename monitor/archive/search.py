"""Full-text search of the archive with the alert query language."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.archive.sqlite import Store


@dataclass
class Hit:
    post: dict[str, Any]
    snippet: str
    offset: float | None
    link: str | None


def search(
    store: Store,
    query_text: str,
    *,
    source: str | None = None,
    since: str | None = None,
    limit: int = 20,
) -> list[Hit]:
    """Posts matching `query_text`, best first. Raises QueryError for a query that cannot parse."""
    from monitor.match import link_at
    from monitor.query import parse_query
    from monitor.snippet import snippet, transcript_offset

    query = parse_query(query_text)
    where, params = _where(query.fts(), source, since)
    sql = f"SELECT p.* {where}"
    sql += " ORDER BY bm25(posts_fts, 4.0, 1.0, 1.0, 0.5), p.published_at DESC LIMIT ?"
    params.append(limit)
    hits = []
    for row in store.db.execute(sql, params):
        fields = {k: row[k] for k in ("title", "text", "transcript", "author")}
        offset = None
        if row["transcript"]:
            offset = transcript_offset(query, store.segments(store.db, row["id"]))
        post = {k: row[k] for k in row.keys() if k not in ("rev", "transcript")}
        # Stored as JSON text; a hit carries them as the lists and objects they are.
        post["media"] = json.loads(post["media"] or "[]")
        post["extra"] = json.loads(post["extra"] or "{}")
        hits.append(Hit(post, snippet(query, fields), offset, link_at(row["url"], offset)))
    return hits


def count(
    store: Store, query_text: str, *, source: str | None = None, since: str | None = None
) -> int:
    """How many posts match, however many `search` was allowed to show."""
    from monitor.query import parse_query

    where, params = _where(parse_query(query_text).fts(), source, since)
    (n,) = store.db.execute(f"SELECT count(*) {where}", params).fetchone()
    return int(n)


def _where(fts: str, source: str | None, since: str | None) -> tuple[str, list[Any]]:
    sql = "FROM posts_fts JOIN posts p ON p.rev = posts_fts.rowid WHERE posts_fts MATCH ?"
    params: list[Any] = [fts]
    if source:
        sql += " AND p.source_id = ?"
        params.append(source)
    if since:
        sql += " AND coalesce(p.published_at, p.first_seen_at) >= ?"
        params.append(since)
    return sql, params
