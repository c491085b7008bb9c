"""One huge document does not stall the daemon: it is parsed, stored and matched in slices."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.config import load_config
from monitor.schedule import Daemon
from tests.origin import Origin, Route

pytestmark = pytest.mark.slow
ITEMS = 5000


def wire_feed(items: int) -> bytes:
    """A legal RSS feed of `items` items of about 380 bytes, every one matching the alert."""
    start = datetime(2026, 11, 19, 12, tzinfo=UTC)
    out = ['<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
           "<title>Wire</title><link>https://wire.example/</link>\n"]  # fmt: skip
    for i in range(items):
        out.append(
            f"<item><title>NATO troops: report {i}</title>"
            f"<link>https://wire.example/news/{i}</link><guid>wire-{i}</guid>"
            f"<pubDate>{format_datetime(start - timedelta(minutes=i))}</pubDate>"
            f"<description>Ministers discussed NATO troops in Ukraine on day {i % 31}; the "
            "statement followed talks in the capital, officials said.</description></item>\n"
        )
    out.append("</channel></rss>\n")
    return "".join(out).encode()


async def _run(cfg, db) -> tuple[float, list[int]]:
    """Run the daemon until every item is matched; the longest stall, and the post counts
    a heartbeat saw while it beat (the document's posts, as they were committed)."""
    daemon = Daemon(load_config(cfg))
    loop = asyncio.get_running_loop()
    worst = 0.0
    seen: list[int] = []

    async def heartbeat() -> None:
        nonlocal worst
        con = sqlite3.connect(db, timeout=30)
        try:
            while True:
                before = loop.time()
                await asyncio.sleep(0.01)
                scheduler = getattr(daemon, "scheduler", None)
                if scheduler is None or not scheduler.running:
                    continue  # the daemon's start-up (imports, opening the archive) is not it
                worst = max(worst, loop.time() - before - 0.01)
                try:
                    (posts,) = con.execute("SELECT count(*) FROM posts").fetchone()
                    (matched,) = con.execute("SELECT count(*) FROM matches").fetchone()
                except sqlite3.OperationalError:  # not created yet
                    continue
                seen.append(posts)
                if matched >= ITEMS:
                    break
        finally:
            con.close()
            daemon.stop.set()

    beat = asyncio.create_task(heartbeat())
    await asyncio.wait_for(daemon.run(), 300)
    await beat
    return worst, seen


def test_a_huge_feed_leaves_the_event_loop_free_while_it_is_stored_and_matched(tmp_path):
    with Origin() as origin:
        origin.routes["/wire.xml"] = Route(wire_feed(ITEMS))
        cfg = tmp_path / "m.toml"
        db = tmp_path / "m.db"
        cfg.write_text(
            f'[monitor]\ndatabase = "{db}"\nevery = "1h"\ntimeout = "60s"\n'
            f'[sources.wire]\ntype = "feed"\nurl = "{origin.url("/wire.xml")}"\n'
            "[alerts.nato]\nquery = 'NATO troops'\nnotify = []\n"
        )
        worst, seen = asyncio.run(_run(cfg, db))
    # The loop ran while the document was being stored: a heartbeat saw it part-way, at
    # more than one point. (Stored in one go, the heartbeat saw none of it, then all of it.)
    partway = sorted({n for n in seen if 0 < n < ITEMS})
    assert len(partway) >= 2, partway
    # And no stall came near the seconds one transaction took: a generous bound, for a
    # loaded machine (a slice is sized to take about 40 ms).
    assert worst < 2.0, worst
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == ITEMS
        assert con.execute("SELECT count(*) FROM matches").fetchone()[0] == ITEMS
        (new,) = con.execute("SELECT new FROM fetches WHERE ok").fetchone()
        assert new == ITEMS  # one fetch, logged once, with every post it saved
    finally:
        con.close()
