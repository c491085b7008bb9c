"""`monitor migrate --to`: a SQLite archive moves to PostgreSQL with its history and its outbox."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from monitor.cli import main
from tests.origin import Origin, Route
from tests.pgserver import PASSWORD
from tests.test_end_to_end import LAVROV, OTHER, rss, write_config

KEPT = {
    "posts": "id, source_id, external_id, url, title, text, version, rev, first_seen_at",
    "post_versions": "post_id, version, seen_at, title, text",
    "transcript_segments": 'post_id, start, "end", text',
    "matches": 'alert_id, post_id, matched_at, snippet, "offset", url',
    "deliveries": "id, alert_id, post_id, notifier, status, attempts, last_error, created_at, "
    "sent_at, next_attempt_at, batch, payload",
    "sources": "id, type, url, last_fetched_at, last_ok_at, last_error, failures, "
    "next_attempt_at, state, last_new_at",
    "fetches": "id, source_id, started_at, ok, http_status, new, error",
    "source_episodes": "id, alert_id, source_id, kind, since, opened_at, closed_at, detail",
    "search_state": "indexed_rev",
}


def table(where: str, name: str) -> list[tuple]:
    sql = f"SELECT {KEPT[name]} FROM {name}"
    if where.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(where) as con:
            rows = con.execute(sql).fetchall()
    else:
        con = sqlite3.connect(where)
        rows = con.execute(sql).fetchall()
        con.close()
    return sorted(rows, key=repr)


def _add_a_video_with_its_transcript(db: str) -> None:
    from monitor.archive import open_archive
    from monitor.models import Post, Segment

    store = open_archive(db)
    segments = (Segment(0.0, 2.5, "hello"), Segment(2.5, 5.0, "NATO troops"))
    with store.transaction() as tx:
        store.save_posts(
            tx,
            "tass",
            [
                Post(
                    "v",
                    "https://youtu.be/x",
                    kind="video",
                    transcript="hello NATO troops",
                    segments=segments,
                )
            ],
        )
        store.index_pending(tx)
        # A source-health episode, and its message waiting: a delivery without a post.
        store.open_episode(tx, "dark", "broken", "failing", "2026-12-01T00:00:00Z", "HTTP 500",
                           ["hook"], {"type": "source_failing", "source": "broken"})  # fmt: skip
    store.close()


def migrate(cfg: Path, url: str, capsys) -> dict:
    capsys.readouterr()
    assert main(["migrate", "--to", url, "--config", str(cfg), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_migration_keeps_history_and_outbox_and_sends_pending_deliveries_once(
    tmp_path: Path, pg_url: str, capsys
) -> None:
    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(b"", status=500)
        hook.post_statuses = [503, 200]  # the receiver is down for the first try only
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"))
        assert main(["fetch", "--config", str(cfg), "-q"]) == 1  # broken.xml fails
        db = str(tmp_path / "monitor.db")
        (pending,) = table(db, "deliveries")
        assert pending[4:6] == ("pending", 1) and pending[9]  # tried once, next try set
        first_id = hook.posts()[0].headers["webhook-id"]
        assert first_id == pending[0]
        _add_a_video_with_its_transcript(db)

        done = migrate(cfg, pg_url, capsys)
        assert done["copied"]["posts"] == 3 and done["pending"] == 2
        assert done["copied"]["source_episodes"] == 1
        assert done["copied"]["transcript_segments"] == 2
        assert PASSWORD not in json.dumps(done)
        for name in KEPT:
            assert table(pg_url, name) == table(db, name), name

        # Twice: nothing added, nothing changed.
        again = migrate(cfg, pg_url, capsys)
        assert set(again["copied"].values()) == {0}
        for name in KEPT:
            assert table(pg_url, name) == table(db, name), name

        # On PostgreSQL now: the pending delivery goes out once, under its old id.
        assert main(["alerts", "--retry", "--config", str(cfg), "--db", pg_url, "-q"]) == 0
        ids = [p.headers["webhook-id"] for p in hook.posts()]
        (event,) = [r[0] for r in table(pg_url, "deliveries") if r[2] is None]
        assert sorted(ids) == sorted([first_id, first_id, event])
        assert main(["alerts", "--retry", "--config", str(cfg), "--db", pg_url, "-q"]) == 0
        assert len(hook.posts()) == 3
        assert [r[4] for r in table(pg_url, "deliveries")] == ["sent", "sent"]

        # The copied source state: a conditional GET with the validators fetched on SQLite.
        capsys.readouterr()
        assert main(["fetch", "tass", "--config", str(cfg), "--db", pg_url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["sources"][0]["not_modified"] is True
        assert origin.gets("/tass.xml")[-1].headers.get("if-none-match") == '"v1"'

    # Searchable there, as it was here.
    for where in (pg_url, db):
        assert main(["search", "Lavrov", "--config", str(cfg), "--db", where, "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 1

    # A third run adds nothing, and does not undo what PostgreSQL did since.
    again = migrate(cfg, pg_url, capsys)
    assert set(again["copied"].values()) == {0}
    assert [r[4] for r in table(pg_url, "deliveries")] == ["sent", "sent"]


def test_migrating_into_an_archive_with_other_posts_is_refused(
    tmp_path: Path, pg_url: str, capsys
) -> None:
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(rss(LAVROV), etag='"v1"')
        origin.routes["/broken.xml"] = Route(rss(OTHER))
        cfg = write_config(tmp_path / "m.toml", origin)
        assert main(["fetch", "tass", "--config", str(cfg), "-q"]) == 0
        assert main(["fetch", "broken", "--config", str(cfg), "--db", pg_url, "-q"]) == 0
    capsys.readouterr()
    assert main(["migrate", "--to", pg_url, "--config", str(cfg)]) == 2
    assert "already holds 1 posts that are not this archive's" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--to", "/tmp/x.db"], "--to: '/tmp/x.db' is not a postgresql:// URL")],
)
def test_migrate_needs_a_postgresql_url(tmp_path: Path, args, message, capsys) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n')
    assert main(["migrate", *args, "--config", str(cfg)]) == 2
    assert message in capsys.readouterr().err


def test_posts_saved_but_not_matched_on_sqlite_are_matched_once_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    from monitor.archive import open_archive
    from monitor.archive.migrate import migrate as copy
    from monitor.match import match_pending
    from monitor.models import Post
    from tests.test_archive_postgres import one_alert_config

    lite = open_archive(str(tmp_path / "monitor.db"))
    lite.sync_sources([("src", "feed", None)])
    with lite.transaction() as db:
        lite.save_posts(db, "src", [Post("matched", None, "NATO summit")])
        lite.index_pending(db)  # indexed; no alerts then
    with lite.transaction() as db:  # a pass killed before its alerts ran: above the mark
        lite.save_posts(db, "src", [Post("waiting", None, "NATO troops")])
    pg = open_archive(pg_url)
    try:
        done = copy(lite, pg)
        assert done.copied["posts"] == 2
        assert copy(lite, pg).copied["posts"] == 0  # twice: nothing waits twice either
        assert pg.db.execute("SELECT count(*) FROM unmatched").fetchone()[0] == 1
        config = one_alert_config(pg_url)
        with pg.transaction() as db:
            pg.save_posts(db, "src", [Post("new", None, "NATO again")])
            match_pending(db, pg, config)
        matched = pg.db.execute(
            "SELECT p.external_id FROM matches m JOIN posts p ON p.id = m.post_id"
        ).fetchall()
        # The one waiting and the new one; not the one matched (before the alert) there.
        assert sorted(r[0] for r in matched) == ["new", "waiting"]
        rows = dict(pg.db.execute("SELECT external_id, rev FROM posts").fetchall())
        assert rows["new"] > max(rows["matched"], rows["waiting"])  # numbered on
        assert pg.db.execute("SELECT count(*) FROM unmatched").fetchone()[0] == 0
    finally:
        pg.close()
        lite.close()
