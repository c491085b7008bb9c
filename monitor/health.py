"""The daemon's heartbeat, and `monitor health`: is the monitor alive and doing its job?"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field

from monitor.archive.sqlite import iso_to_epoch, now_iso

BEAT_EVERY = 30.0  # seconds between two heartbeats of a running daemon
ROLES = "fetch,deliver,transcribe"


def daemon_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(db: sqlite3.Connection, ident: str, started_at: str, roles: str = ROLES) -> None:
    """Say this daemon is alive (one row, replaced each time)."""
    host, _, pid = ident.rpartition(":")
    db.execute(
        "INSERT INTO daemons (id, host, pid, roles, started_at, beat_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET beat_at = excluded.beat_at, stopped_at = NULL",
        (ident, host, int(pid), roles, started_at, now_iso()),
    )


def stopped(db: sqlite3.Connection, ident: str) -> None:
    """A clean stop says so: `health` tells a stopped daemon from one that died."""
    db.execute("UPDATE daemons SET stopped_at = ? WHERE id = ?", (now_iso(), ident))


@dataclass(frozen=True)
class Limits:
    """What `monitor health` calls unhealthy (its options, with these defaults)."""

    silence: float = 3 * BEAT_EVERY  # no heartbeat for longer than this
    failing: float = 0.5  # at least this share of the fetched, enabled sources failing
    backlog: float = 3600.0  # a pending delivery older than this


@dataclass
class Health:
    problems: list[str] = field(default_factory=list)
    daemon: dict[str, object] | None = None
    sources: int = 0
    failing: list[str] = field(default_factory=list)
    pending: int = 0
    oldest_pending_at: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check(db: sqlite3.Connection, enabled: list[str], limits: Limits) -> Health:
    """The archive's word on the monitor's health: a heartbeat, the sources, the outbox."""
    now = time.time()
    out = Health()
    row = db.execute(
        "SELECT id, roles, started_at, beat_at, stopped_at FROM daemons "
        "ORDER BY beat_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        out.problems.append("no daemon has run on this archive (`monitor run` starts one)")
    else:
        out.daemon = dict(
            zip(("id", "roles", "started_at", "beat_at", "stopped_at"), row, strict=True)
        )
        age = now - (iso_to_epoch(row[3]) or 0)
        if row[4]:
            out.problems.append(f"the daemon {row[0]} stopped at {row[4]}")
        elif age > limits.silence:
            out.problems.append(
                f"no daemon heartbeat for {_ago(age)} (the last from {row[0]}, at {row[3]})"
            )
    marks = ",".join("?" * len(enabled))
    rows = db.execute(
        f"SELECT id, failures FROM sources WHERE last_fetched_at IS NOT NULL AND id IN ({marks})",
        enabled,
    ).fetchall()
    out.sources = len(rows)
    out.failing = sorted(sid for sid, failures in rows if failures)
    if rows and len(out.failing) / len(rows) >= limits.failing:
        shown = ", ".join(out.failing[:5]) + (", …" if len(out.failing) > 5 else "")
        out.problems.append(f"{len(out.failing)} of {len(rows)} sources failing ({shown})")
    out.pending, out.oldest_pending_at = db.execute(
        "SELECT count(*), min(created_at) FROM deliveries WHERE status = 'pending'"
    ).fetchone()
    oldest = iso_to_epoch(out.oldest_pending_at)
    if oldest is not None and now - oldest > limits.backlog:
        out.problems.append(
            f"the outbox holds {out.pending} pending, the oldest waiting for {_ago(now - oldest)}"
        )
    return out


def workers(db: sqlite3.Connection, silence: float = 3 * BEAT_EVERY) -> list[dict[str, object]]:
    """Every daemon that has run on this archive, newest heartbeat first, with its state:
    `live` (beating), `stopped` (said so) or `silent` (stopped beating: killed, or cut off)."""
    now = time.time()
    out = []
    for row in db.execute(
        "SELECT id, host, pid, roles, started_at, beat_at, stopped_at FROM daemons "
        "ORDER BY beat_at DESC, id"
    ):
        worker = dict(
            zip(("id", "host", "pid", "roles", "started_at", "beat_at", "stopped_at"), row,
                strict=True)
        )  # fmt: skip
        if row[6]:
            worker["state"] = "stopped"
        elif now - (iso_to_epoch(row[5]) or 0) > silence:
            worker["state"] = "silent"
        else:
            worker["state"] = "live"
        out.append(worker)
    return out


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
