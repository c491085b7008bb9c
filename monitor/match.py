"""Run alert queries over the posts that are new or changed in this pass; snippets and offsets."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from monitor.archive.sqlite import Store, now_iso
from monitor.config_types import format_duration
from monitor.models import Match
from monitor.query import FIELDS

if TYPE_CHECKING:
    from monitor.config import Config


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


@dataclass
class PassMatches:
    """What one `match_pending` found, by source: new matches, and notices (already added to
    the source's row: `monitor sources` shows them beside its last fetch)."""

    matches: dict[str, list[Match]] = field(default_factory=dict)
    notices: dict[str, list[str]] = field(default_factory=dict)

    def add(self, other: PassMatches) -> None:
        for sid, matches in other.matches.items():
            self.matches.setdefault(sid, []).extend(matches)
        for sid, notices in other.notices.items():
            self.notices.setdefault(sid, []).extend(notices)


def match_pending(db: sqlite3.Connection, store: Store, config: Config) -> PassMatches:
    """Index the posts saved since the last call, and record their matches and deliveries.

    Runs in the caller's transaction, so the search mark moves with the matches it implies:
    each new or changed post is matched exactly once, by whichever process gets to it first,
    even after a crash between its save and its turn. The queries run on `pass_fts`, the
    connection's temporary index of just those posts: a rowid range on the archive's index
    would still make a prefix query (`deploy*`) read every matching term of the whole
    archive, so the cost would grow with it; this does not. (When the batch is most of the
    archive, as in a first pass, they run on the archive's index, which costs the same.)

    The work per match is kept small, for broad alerts on a busy pass match thousands of
    posts: the posts are read once for all alerts, each post's text is tokenised once
    whichever alerts match it, and the matches and deliveries are written in one batch.
    """
    found = PassMatches()
    pending = store.index_pending(db)
    if pending is None or not config.alerts:
        return found
    table, mark = pending
    revs_of: dict[str, list[int]] = {}
    for alert in config.alerts.values():
        query = config.queries.get(alert.id)
        if query is None:
            continue  # an alert on sources' health (monitor/source_health.py)
        revs = store.matching_revs(db, table, query, mark)
        if revs:
            revs_of[alert.id] = revs
    if not revs_of:
        return found
    from monitor.snippet import Snippets, transcript_offset

    posts = {r["rev"]: r for r in store.posts_by_rev(db, sorted(set().union(*revs_of.values())))}
    types = dict(db.execute("SELECT id, type FROM sources").fetchall())
    snippets = Snippets(config.queries[a] for a in revs_of)
    fields_of: dict[int, dict[str, str | None]] = {}
    segments: dict[str, list[tuple[float, str]]] = {}
    matched_at = now_iso()
    rows_out: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []
    for alert_id, revs in revs_of.items():
        alert, query = config.alerts[alert_id], config.queries[alert_id]
        applies = {sid: alert.applies_to(sid) for sid in {posts[v]["source_id"] for v in revs}}
        rows = [row for row in map(posts.__getitem__, revs) if applies[row["source_id"]]]
        done = store.already_matched(db, alert_id, [r["id"] for r in rows])
        rows = [row for row in rows if row["id"] not in done]
        if not rows:
            continue
        budget = _hourly_budget(db, alert_id, alert.max_per_hour)
        held: Counter[str] = Counter()
        old: Counter[str] = Counter()
        twins: Counter[tuple[str, str]] = Counter()
        # Same format as published_at (ISO 8601 UTC, Z), so the strings compare as times.
        since = now_iso(time.time() - alert.max_age) if alert.max_age is not None else None
        # The links this alert matched before, and in this pass: one alert per link.
        seen = (
            store.matched_links(db, alert_id, {_without_fragment(r["url"]) for r in rows})
            if alert.notify
            else {}
        )
        for row in rows:
            sid, pid = row["source_id"], row["id"]
            offset = None
            if row["transcript"]:
                if pid not in segments:
                    segments[pid] = store.segments(db, pid)
                offset = transcript_offset(query, segments[pid])
            notify = alert.notify
            published = row["published_at"]
            link = _without_fragment(row["url"])
            twin = _twin(seen.get(link), pid) if notify and link else None
            if since is not None and published and published < since and notify:
                notify = []  # recorded and searchable, but not news: not sent
                old[sid] += 1
            elif twin is not None:
                # The same story through a second source (an outlet's feed and its sitemap, a
                # feed that lists it twice): the desk has had it once.
                notify = []
                twins[sid, twin] += 1
            elif budget is not None:
                if budget <= 0:
                    notify = []  # recorded and searchable, but not sent
                    held[sid] += 1
                budget -= 1
            # The snippet is made now only for a payload, frozen at match time; any other
            # waits for a reader (`stored_snippet`): on a busy pass most matches are never
            # shown, and their snippets were most of the cost of a match.
            snip = None
            if notify:
                fields = fields_of.get(row["rev"])
                if fields is None:
                    fields = fields_of[row["rev"]] = {k: row[k] for k in FIELDS}
                snip = snippets.snippet(query, fields)
                body = payload(alert_id, alert.query or "", row, types.get(sid, ""), snip, offset)
                deliveries += store.delivery_rows(alert_id, pid, notify, body, matched_at)
            if link and alert.notify:
                seen.setdefault(link, []).append((pid, sid))
            rows_out.append((alert_id, pid, matched_at, snip, offset, link, alert.query))
            found.matches.setdefault(sid, []).append(Match(alert_id, pid, snip, offset))
        for sid, n in held.items():
            found.notices.setdefault(sid, []).append(
                f"alert {alert_id}: max_per_hour ({alert.max_per_hour}) reached, "
                f"{n} match{'es' if n > 1 else ''} recorded but not sent"
            )
        for (sid, twin), n in twins.items():
            found.notices.setdefault(sid, []).append(
                f"alert {alert_id}: {n} match{'es' if n > 1 else ''} on links it already matched"
                f" from {twin} recorded but not sent"
            )
        for sid, n in old.items():
            found.notices.setdefault(sid, []).append(
                f"alert {alert_id}: {n} match{'es' if n > 1 else ''} on posts older than "
                f"max_age ({format_duration(alert.max_age)}) recorded but not sent"
            )
    store.add_matches(db, rows_out, deliveries)
    for sid, notices in found.notices.items():
        store.add_notices(db, sid, notices)
    return found


def stored_snippets(db: Any, matches: list[Match]) -> dict[tuple[str, str], str]:
    """The snippets of these stored matches, by (alert, post), made from the query each match
    row keeps: for matches whose snippet waited for a reader (`Match.snippet` None)."""
    from monitor.snippet import StoredSnippets

    wanted = {(m.alert_id, m.post_id) for m in matches}
    made: dict[tuple[str, str], str] = {}
    maker = StoredSnippets()
    ids = list(dict.fromkeys(pid for _, pid in wanted))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = db.execute(
            "SELECT m.alert_id, m.post_id, m.snippet, m.query, p.title, p.text, p.transcript, "
            "p.author FROM matches m JOIN posts p ON p.id = m.post_id "
            f"WHERE m.post_id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        for alert_id, pid, snippet, query, *values in rows:
            if (alert_id, pid) in wanted:
                made[alert_id, pid] = (
                    snippet
                    if snippet is not None
                    else maker.snippet(query, dict(zip(FIELDS, values, strict=True)))
                )
    return made


def _twin(earlier: list[tuple[str, str]] | None, pid: str) -> str | None:
    """The source of the first earlier match on the same link that was another post."""
    for other, sid in earlier or ():
        if other != pid:
            return sid
    return None


def _without_fragment(url: str | None) -> str | None:
    return url.split("#", 1)[0] if url else url


def _hourly_budget(db: sqlite3.Connection, alert_id: str, max_per_hour: int | None) -> int | None:
    """How many more matches of this alert may be sent in the current hour (None: no limit)."""
    if max_per_hour is None:
        return None
    since = now_iso(time.time() - 3600)
    (sent,) = db.execute(
        "SELECT count(DISTINCT m.post_id) FROM matches m JOIN deliveries d "
        "ON d.alert_id = m.alert_id AND d.post_id = m.post_id "
        "WHERE m.alert_id = ? AND m.matched_at >= ?",
        (alert_id, since),
    ).fetchone()
    return max_per_hour - sent
