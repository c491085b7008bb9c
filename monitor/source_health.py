"""Source-health alerts: an episode opens when a source fails or stays silent too long, and ends when it recovers."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.archive.sqlite import Store, iso_to_epoch, now_iso

if TYPE_CHECKING:
    from collections.abc import Iterable

    from monitor.config import AlertConfig, Config

FAILING, SILENT = "failing", "silent"


@dataclass(frozen=True)
class HealthEvent:
    """What one check queued: `event` is source_failing, source_silent or source_recovered."""

    alert_id: str
    source_id: str
    event: str
    payload: dict[str, Any]


def check_sources(
    db: sqlite3.Connection,
    store: Store,
    config: Config,
    source_ids: Iterable[str] | None = None,
    now: float | None = None,
) -> list[HealthEvent]:
    """Open and close the episodes of every source-health alert, in the caller's transaction.

    It reads only the archive (`sources`, `fetches`), after the fetches have written it: a
    stage beside the matching, never a step inside a fetch. `source_ids` limits it to the
    sources a pass has just fetched (`monitor fetch a` knows nothing new about `b`, whose row
    may be days old only because nobody fetched it). Each episode is recorded once, whichever
    process gets there first, so a message goes out once per episode and notifier.
    """
    alerts = [a for a in config.alerts.values() if a.watches_sources]
    if not alerts:
        return []
    now = time.time() if now is None else now
    wanted = set(source_ids) if source_ids is not None else None
    rows = {
        r["id"]: r
        for r in db.execute(
            # The fetch log is read only for a source that never found a new post.
            "SELECT s.*, CASE WHEN s.last_new_at IS NULL THEN (SELECT min(f.started_at)"
            " FROM fetches f WHERE f.source_id = s.id) END AS first_fetched_at FROM sources s"
        )
    }
    events: list[HealthEvent] = []
    for alert in alerts:
        open_ = {(e["source_id"], e["kind"]): e for e in store.open_episodes(db, alert.id)}
        # A condition that began at or before its cutoff has lasted long enough. The times are
        # all ISO 8601 UTC of one format, so they compare as strings, unparsed.
        cutoff = {
            FAILING: _cutoff(alert.failing_for, now),
            SILENT: _cutoff(alert.silent_for, now),
        }
        for sid, source in config.sources.items():
            row = rows.get(sid)
            if not source.enabled or row is None or not alert.applies_to(sid):
                continue
            if wanted is not None and sid not in wanted:
                continue
            began = _began(row)
            failing = _lasting(began[FAILING], cutoff[FAILING])
            conditions = {
                FAILING: failing,
                # A source failing for longer than this alert's failing_for is reported as
                # failing; that it has no new posts says nothing more.
                SILENT: _lasting(began[SILENT], cutoff[SILENT]) and not failing,
            }
            for kind, on in conditions.items():
                episode = open_.get((sid, kind))
                if episode is not None and episode["since"] != began[kind]:
                    # A success, or a new post, since the episode began: it is over (and a
                    # new one may begin at once, below, from the new starting point).
                    body = _recovered(alert, row, episode, now)
                    store.close_episode(db, episode, list(alert.notify), body)
                    events.append(HealthEvent(alert.id, sid, body["type"], body))
                    episode = None
                if on and episode is None and (kind != SILENT or (sid, FAILING) not in open_):
                    body = _fired(alert, row, kind, began[kind] or "", now)
                    detail = row["last_error"] if kind == FAILING else None
                    store.open_episode(
                        db, alert.id, sid, kind, began[kind] or "", detail, list(alert.notify), body
                    )
                    events.append(HealthEvent(alert.id, sid, body["type"], body))
    return events


def _began(row: sqlite3.Row) -> dict[str, str | None]:
    """When each condition began: the first failure in a row, and the last new post (or, for
    a source that never had one, its first fetch). None: the condition does not hold."""
    silent_since = row["last_new_at"] or (row["first_fetched_at"] if row["last_ok_at"] else None)
    return {FAILING: row["failing_since"], SILENT: silent_since}


def _cutoff(threshold: float | None, now: float) -> str | None:
    return None if threshold is None else now_iso(now - threshold)


def _lasting(since: str | None, cutoff: str | None) -> bool:
    return cutoff is not None and bool(since) and str(since) <= cutoff


def _source(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "type": row["type"], "url": row["url"]}


def _link(row: sqlite3.Row) -> str | None:
    url = row["url"]
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


def _fired(
    alert: AlertConfig, row: sqlite3.Row, kind: str, since: str, now: float
) -> dict[str, Any]:
    threshold = alert.failing_for if kind == FAILING else alert.silent_for
    return {
        "type": f"source_{kind}",
        "alert": alert.id,
        "source": _source(row),
        "since": since,
        "seconds": int(now - (iso_to_epoch(since) or now)),
        "threshold": threshold,
        **_facts(row, now),
    }


def _facts(row: sqlite3.Row, now: float) -> dict[str, Any]:
    """What every source-health message says of the source as it stands."""
    return {
        "failures": row["failures"],
        "last_error": row["last_error"],
        "last_ok_at": row["last_ok_at"],
        "last_new_at": row["last_new_at"],
        "at": now_iso(now),
        "link": _link(row),
    }


def _recovered(
    alert: AlertConfig, row: sqlite3.Row, episode: sqlite3.Row, now: float
) -> dict[str, Any]:
    return {
        "type": "source_recovered",
        "alert": alert.id,
        "source": _source(row),
        "condition": episode["kind"],
        "since": episode["since"],
        "seconds": int(now - (iso_to_epoch(episode["since"]) or now)),
        **_facts(row, now),
    }
