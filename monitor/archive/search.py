"""Full-text search of the archive with the alert query language."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.archive.sqlite import Store

if TYPE_CHECKING:
    from monitor.query import Query


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
    from monitor.query import parse_query

    query = parse_query(query_text)
    return _hits(store, query, store.search_rows(query, source, since, limit))


def search_counted(
    store: Store,
    query_text: str,
    *,
    source: str | None = None,
    since: str | None = None,
    limit: int = 20,
) -> tuple[list[Hit], int]:
    """`search`, and how many posts match in all, as `monitor search` says it ("20 of 11,053
    results"): counted only when the hits reached `limit` (on PostgreSQL, found with them in
    one pass over the matches)."""
    from monitor.query import parse_query

    query = parse_query(query_text)
    rows, total = store.search_counted(query, source, since, limit)
    return _hits(store, query, rows), total


def _hits(store: Store, query: Query, rows: list[Any]) -> list[Hit]:
    from monitor.match import link_at
    from monitor.query import FIELDS
    from monitor.snippet import snippet, transcript_offset

    hits = []
    for row in rows:
        fields = {k: row[k] for k in FIELDS}
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

    return store.search_count(parse_query(query_text), source, since)
