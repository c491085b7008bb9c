"""A source that keeps failing backs off exponentially, capped, with jitter; a success resets it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from monitor.archive.sqlite import iso_to_epoch
from monitor.pipeline import MAX_BACKOFF
from tests.faults import hostile as h
from tests.faults.conftest import fetch, query, run_cli, source_toml, write_config
from tests.faults.hostile import Hostile

EVERY = 3600.0
SOURCES = ("down-a", "down-b", "down-c")


def delays(db: Path) -> dict[str, float]:
    """Seconds from each source's last attempt to its next one."""
    rows = query(db, "SELECT id, last_fetched_at, next_attempt_at FROM sources")
    return {
        r["id"]: iso_to_epoch(r["next_attempt_at"]) - iso_to_epoch(r["last_fetched_at"])
        for r in rows
        if r["next_attempt_at"]
    }


def test_repeated_failures_back_off_exponentially_capped_with_jitter_then_reset(
    server: Hostile, tmp_path: Path
) -> None:
    server.routes["/down"] = h.status(500)
    toml = "".join(source_toml(sid, "feed", server.url("/down")) for sid in SOURCES)
    config = write_config(tmp_path, toml, every="1h")
    seen: list[dict[str, float]] = []
    for attempt in range(1, 5):
        result = fetch(config)
        assert result.code == 1 and not result.escapes
        seen.append(delays(result.db_path))
        nominal = min(EVERY * 2 ** (attempt - 1), MAX_BACKOFF)  # 1h, 2h, 4h, then 6h not 8h
        for sid in SOURCES:
            assert nominal * 0.9 - 2 <= seen[-1][sid] <= nominal * 1.1 + 2, (attempt, seen[-1])
    # Jitter: three sources failing in the same pass do not all retry at the same moment.
    assert len({round(d) for d in seen[0].values()}) > 1

    listing = run_cli(config, "sources", "--json")
    assert listing.code == 0
    by_id = {s["id"]: s for s in json.loads(listing.out)}
    for sid in SOURCES:
        row = query(result.db_path, "SELECT * FROM sources WHERE id = ?", sid)[0]
        assert by_id[sid]["failures"] == 4
        assert by_id[sid]["last_error"] == "HTTP 500 Internal Server Error"
        assert by_id[sid]["next_due"] == row["next_attempt_at"]
    human = run_cli(config, "sources").out
    assert "FAILING ×4" in human and "last error: HTTP 500 Internal Server Error" in human

    server.routes["/down"] = h.document(h.rss("Back online"))
    recovered = fetch(config)
    assert recovered.code == 0
    listing = {s["id"]: s for s in json.loads(run_cli(config, "sources", "--json").out)}
    for sid in SOURCES:
        row = recovered.row(sid)
        assert row["failures"] == 0 and row["last_error"] is None and row["next_attempt_at"] is None
        assert listing[sid]["failures"] == 0 and listing[sid]["last_error"] is None
        due = iso_to_epoch(listing[sid]["next_due"]) - iso_to_epoch(row["last_fetched_at"])
        assert due == EVERY  # back on its schedule, not the backoff
        assert [p["title"] for p in recovered.posts(sid)] == ["Back online"]


def test_one_failure_after_recovery_starts_the_backoff_again(
    server: Hostile, tmp_path: Path
) -> None:
    server.routes["/flaky"] = h.status(500)
    config = write_config(tmp_path, source_toml("flaky", "feed", server.url("/flaky")))
    fetch(config)
    fetch(config)
    server.routes["/flaky"] = h.document(h.rss("ok"))
    fetch(config)
    server.routes["/flaky"] = h.status(500)
    again = fetch(config)
    assert again.row("flaky")["failures"] == 1
    assert EVERY * 0.9 - 2 <= delays(again.db_path)["flaky"] <= EVERY * 1.1 + 2


def test_at_most_two_requests_reach_one_host_at_once_by_default(
    server: Hostile, tmp_path: Path
) -> None:
    active = peak = 0

    async def slow(conn: h.Conn) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.2)
            await conn.respond(200, h.rss("x"), {"Content-Type": "application/rss+xml"})
        finally:
            active -= 1

    server.routes["/slow"] = slow
    toml = "".join(source_toml(f"s{i}", "feed", server.url(f"/slow?{i}")) for i in range(6))
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "monitor.db"}"\ntimeout = "5s"\n\n{toml}',
        encoding="utf-8",
    )  # no per_host: the default applies
    result = fetch(config)
    assert result.code == 0 and peak == 2


def test_a_source_that_failed_a_thousand_times_still_backs_off_and_records_the_failure(
    server: Hostile, tmp_path: Path
) -> None:
    server.routes["/dead"] = h.status(500)
    config = write_config(tmp_path, source_toml("dead", "feed", server.url("/dead")), every="1m")
    fetch(config)
    db = sqlite3.connect(tmp_path / "monitor.db")
    db.execute("UPDATE sources SET failures = 1100")  # a dead feed, fetched from cron for days
    db.commit()
    db.close()
    again = fetch(config)
    assert again.code == 1 and not again.escapes
    assert again.row("dead")["failures"] == 1101
    assert MAX_BACKOFF * 0.9 - 2 <= delays(again.db_path)["dead"] <= MAX_BACKOFF * 1.1 + 2


def test_sources_next_due_after_a_failure_is_when_the_daemon_tries_again(
    server: Hostile, tmp_path: Path, monkeypatch
) -> None:
    import random

    monkeypatch.setattr(random, "uniform", lambda a, b: a)  # the backoff's jitter at its least
    server.routes["/flaky"] = h.status(500)
    config = write_config(tmp_path, source_toml("flaky", "feed", server.url("/flaky")))
    failed = fetch(config)
    row = failed.row("flaky")
    # 0.9 h after the failure: the daemon (schedule.py) moves the source's job to exactly this.
    assert delays(failed.db_path)["flaky"] < EVERY
    (listed,) = json.loads(run_cli(config, "sources", "--json").out)
    assert listed["next_due"] == row["next_attempt_at"]
