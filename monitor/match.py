"""Run alert queries over the posts that are new or changed in this pass; snippets and offsets."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitor.models import Match
from monitor.store import SaveResult, Store

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.sources.base import SourceConfig


def link_at(url: str | None, offset: float | None) -> str | None:
    """The post URL opened at `offset` seconds, in the form its platform understands."""
    if not url or offset is None:
        return url
    seconds = int(offset)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host.endswith(
        ("youtube.com", "youtu.be", "x.com", "twitter.com", "vimeo.com", "dailymotion.com")
    ):
        # Query parameter: YouTube (`&t=83s`), and the players that follow its convention.
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "t"]
        query.append(("t", f"{seconds}s"))
        return urlunsplit(parts._replace(query=urlencode(query)))
    # Media fragments (`#t=83`) are understood by every HTML5 player, so they suit plain pages.
    return urlunsplit(parts._replace(fragment=f"t={seconds}"))


def payload(
    alert_id: str,
    query: str,
    post: sqlite3.Row,
    source_type: str,
    snippet: str,
    offset: float | None,
) -> dict[str, Any]:
    """The alert payload of DESIGN.md, frozen at match time so every retry sends the same."""
    return {
        "type": "match",
        "alert": alert_id,
        "query": query,
        "post": {
            "id": post["id"],
            "source": post["source_id"],
            "source_type": source_type,
            "kind": post["kind"],
            "url": post["url"],
            "author": post["author"],
            "title": post["title"],
            "text": post["text"],
            "published_at": post["published_at"],
        },
        "snippet": snippet,
        "offset": offset,
        "link": link_at(post["url"], offset),
    }


def match_saved(
    db: sqlite3.Connection, store: Store, config: Config, source: SourceConfig, saved: SaveResult
) -> list[Match]:
    """Record matches (and their pending deliveries) for the posts this save touched.

    The rev range makes the search index look only at this pass's posts, so the cost does not
    grow with the archive.
    """
    if saved.rev_lo is None or saved.rev_hi is None:
        return []
    from monitor.snippet import snippet, transcript_offset

    found: list[Match] = []
    for alert in config.alerts.values():
        if not alert.applies_to(source.id):
            continue
        query = config.queries[alert.id]
        revs = [
            r[0]
            for r in db.execute(
                "SELECT rowid FROM posts_fts WHERE posts_fts MATCH ? AND rowid BETWEEN ? AND ?",
                (query.fts(), saved.rev_lo, saved.rev_hi),
            )
        ]
        if not revs:
            continue
        rows = [r for r in store.posts_by_rev(db, revs) if r["source_id"] == source.id]
        done = store.already_matched(db, alert.id, [r["id"] for r in rows])
        for row in rows:
            if row["id"] in done:
                continue
            fields = {k: row[k] for k in ("title", "text", "transcript", "author")}
            snip = snippet(query, fields)
            offset = None
            if row["transcript"]:
                offset = transcript_offset(query, store.segments(db, row["id"]))
            body = payload(alert.id, alert.query, row, source.type, snip, offset)
            if store.add_match(db, alert.id, row["id"], snip, offset, list(alert.notify), body):
                found.append(Match(alert.id, row["id"], snip, offset))
    return found
