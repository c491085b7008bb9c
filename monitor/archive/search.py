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
    hits = []
    for row in store.search_rows(query, source, since, limit):
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

    return store.search_count(parse_query(query_text), source, since)
