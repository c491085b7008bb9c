"""The archive: stable ids, versions, an index that folds case and accents, revisions."""

from __future__ import annotations

import sqlite3

import pytest

from monitor.archive import open_archive
from monitor.archive.postgres import PgStore
from monitor.archive.sqlite import FTS_AUTOMERGE, SCHEMA_VERSION, SaveResult, Store, post_id
from monitor.models import Media, Post, Segment
from monitor.query import parse_query


@pytest.fixture
def store(database: str):
    """A new archive, on SQLite and on PostgreSQL in turn."""
    s = open_archive(database)
    s.sync_sources([("src", "feed", "https://example.org/feed")])
    yield s
    s.close()


def on_postgresql(store: Store) -> bool:
    return isinstance(store, PgStore)


def reopen(store: Store) -> Store:
    """A second connection to the same archive, as another process has."""
    return open_archive(store.url if isinstance(store, PgStore) else store.path)


def save(store: Store, posts: list[Post], source: str = "src", *, index: bool = True):
    with store.transaction() as db:
        result = store.save_posts(db, source, posts)
        if index:
            store.index_pending(db)
        return result


def integrity_ok(store: Store) -> bool:
    if on_postgresql(store):
        # The index holds exactly the posts (each is indexed as it is saved), each once, by
        # its current rev.
        (bad,) = store.db.execute(
            "SELECT count(*) FROM posts_fts f LEFT JOIN posts p ON p.rev = f.rev "
            "WHERE p.rev IS NULL"
        ).fetchone()
        (missing,) = store.db.execute(
            "SELECT count(*) FROM posts p LEFT JOIN posts_fts f ON p.rev = f.rev "
            "WHERE f.rev IS NULL"
        ).fetchone()
        return bad == missing == 0
    store.db.execute("INSERT INTO posts_fts(posts_fts, rank) VALUES ('integrity-check', 1)")
    return store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def fts(store: Store, query: str) -> list[str]:
    """The titles of the indexed posts that match a query, sorted."""
    rows = store.search_rows(parse_query(query), None, None, 1000)
    return sorted((r["title"] for r in rows), key=lambda t: (t is None, t))


def indexed_revs(store: Store) -> list[int]:
    column = "rev" if on_postgresql(store) else "rowid"
    return [r[0] for r in store.db.execute(f"SELECT {column} FROM posts_fts")]


def test_post_id_is_stable_and_distinct_per_source():
    assert post_id("a", "x") == post_id("a", "x")
    assert post_id("a", "x") != post_id("b", "x")


def test_new_posts_are_stored_with_version_one_and_history(store):
    r = save(store, [Post("g1", "https://e.org/1", title="One", text="Body")])
    assert (r.new, r.updated) == (1, 0)
    row = store.db.execute("SELECT * FROM posts").fetchone()
    assert row["version"] == 1 and row["id"] == post_id("src", "g1")
    assert store.db.execute("SELECT count(*) FROM post_versions").fetchone()[0] == 1


def test_unchanged_post_is_not_rewritten(store):
    p = Post("g1", "https://e.org/1", title="One", text="Body", published_at="2026-11-24T10:00:00Z")
    save(store, [p])
    before = dict(store.db.execute("SELECT * FROM posts").fetchone())
    r = save(store, [p])
    assert (r.new, r.updated, r.rev_lo) == (0, 0, None)
    assert dict(store.db.execute("SELECT * FROM posts").fetchone()) == before


def test_changed_title_makes_a_new_version_and_reindexes(store):
    save(store, [Post("g1", "https://e.org/1", title="Talks in Antalya", text="Body")])
    r = save(store, [Post("g1", "https://e.org/1", title="Lavrov laughs in Antalya", text="Body")])
    assert (r.new, r.updated) == (0, 1)
    row = store.db.execute("SELECT version, title FROM posts").fetchone()
    assert tuple(row) == (2, "Lavrov laughs in Antalya")
    versions = store.db.execute(
        "SELECT version, title FROM post_versions ORDER BY version"
    ).fetchall()
    assert [tuple(v) for v in versions] == [
        (1, "Talks in Antalya"),
        (2, "Lavrov laughs in Antalya"),
    ]
    assert fts(store, "lavrov") == ["Lavrov laughs in Antalya"]
    assert fts(store, "talks") == []  # the old text is gone from the index


def test_metadata_change_updates_quietly_without_a_version(store):
    save(store, [Post("g1", "https://e.org/1", title="T", text="B")])
    r = save(
        store,
        [Post("g1", "https://e.org/1", title="T", text="B", media=(Media("https://e.org/i.jpg"),))],
    )
    row = store.db.execute("SELECT version, media FROM posts").fetchone()
    assert row["version"] == 1 and "i.jpg" in row["media"]
    assert (r.new, r.updated, r.rev_lo) == (0, 0, None)


def test_revision_range_covers_exactly_the_new_and_changed_posts(store):
    save(store, [Post(f"g{i}", None, title=f"post {i}") for i in range(5)])
    r = save(store, [Post("g1", None, title="post 1 edited"), Post("g9", None, title="post 9"),
                     Post("g2", None, title="post 2")])  # fmt: skip
    revs = [rev for rev in indexed_revs(store) if r.rev_lo <= rev <= r.rev_hi]
    titles = [
        store.db.execute("SELECT title FROM posts WHERE rev = ?", (rev,)).fetchone()[0]
        for rev in revs
    ]
    assert sorted(titles) == ["post 1 edited", "post 9"]


def test_saved_posts_wait_above_the_search_mark_until_indexed(store):
    save(store, [Post("g1", None, title="NATO troops")], index=False)
    if on_postgresql(store):
        # Searchable at once; listed in `unmatched` until the alerts have run on it.
        assert fts(store, "troops") == ["NATO troops"]
        rev = store.db.execute("SELECT rev FROM posts").fetchone()[0]
        assert [r[0] for r in store.db.execute("SELECT rev FROM unmatched")] == [rev]
        with store.transaction() as db:
            assert store.index_pending(db) == ("pass_fts", 0)
            assert [r[0] for r in db.execute("SELECT rev FROM pass_fts")] == [rev]
            assert store.index_pending(db) is None  # nothing new since
        assert store.db.execute("SELECT count(*) FROM unmatched").fetchone()[0] == 0
        return
    assert fts(store, "troops") == []
    with store.transaction() as db:
        assert store.index_pending(db) == ("posts_fts", 0)  # a first batch: the archive's index
        assert store.index_pending(db) is None  # nothing new since
    assert fts(store, "troops") == ["NATO troops"]
    (mark,) = store.db.execute("SELECT indexed_rev FROM search_state").fetchone()
    assert mark == store.db.execute("SELECT max(rev) FROM posts").fetchone()[0]


def test_a_small_batch_on_a_bigger_archive_gets_its_own_index(store):
    save(store, [Post(f"old{i}", None, title=f"old {i}") for i in range(Store.PASS_INDEX_ABOVE)])
    save(store, [Post("new", None, title="new")], index=False)
    with store.transaction() as db:
        # On PostgreSQL `pass_fts` holds just the unmatched posts, whatever the archive's size.
        mark = 0 if on_postgresql(store) else Store.PASS_INDEX_ABOVE
        assert store.index_pending(db) == ("pass_fts", mark)
        revs = store.matching_revs(db, "pass_fts", parse_query("new OR old"), 0)
        assert revs == [Store.PASS_INDEX_ABOVE + 1]


def test_posts_another_connection_saved_are_indexed_with_this_ones(store):
    other = reopen(store)
    try:
        save(other, [Post("theirs", None, title="saved over there")], index=False)
        save(store, [Post("ours", None, title="saved here")], index=False)
        with store.transaction() as db:
            store.index_pending(db)
    finally:
        other.close()
    assert integrity_ok(store)
    assert fts(store, "saved") == ["saved here", "saved over there"]


def test_a_rolled_back_save_is_not_indexed_under_a_rev_another_post_took(store):
    with pytest.raises(RuntimeError), store.transaction() as db:
        store.save_posts(db, "src", [Post("ghost", None, title="never stored")])
        raise RuntimeError("the save is undone")
    other = reopen(store)
    try:
        save(other, [Post("real", None, title="stored")], index=False)  # the same rev
    finally:
        other.close()
    with store.transaction() as db:
        store.index_pending(db)
    assert fts(store, "never") == [] and fts(store, "stored") == ["stored"]
    assert integrity_ok(store)


def test_a_post_changed_before_its_turn_is_indexed_once_as_last_saved(store):
    save(store, [Post("g1", None, title="first"), Post("g2", None, title="other")])
    save(store, [Post("g1", None, title="second")], index=False)
    save(store, [Post("g1", None, title="third")], index=False)
    with store.transaction() as db:
        store.index_pending(db)
    assert integrity_ok(store)
    assert fts(store, "first OR second") == []
    assert fts(store, "third") == ["third"]
    assert fts(store, "other") == ["other"]
    versions = store.db.execute("SELECT count(*) FROM post_versions").fetchone()[0]
    assert versions == 4  # g1's three titles and g2's


@pytest.mark.parametrize(
    ("stored", "typed"),
    [
        ("Palais de l'Élysée", "elysee"),
        ("НАТО и Украина", "нато"),
        ("İstanbul'da zirve", "istanbul"),
        ("Isparta ılık", "ilik"),
        ("Ὀδυσσεύς", "οδυσσευς"),
        ("Łódź", "lodz"),
        ("Straße", "strasse"),
    ],
)
def test_search_index_folds_case_and_accents_in_every_script(store, stored, typed):
    save(store, [Post("g", None, title=stored)])
    assert fts(store, f'"{typed}"') == [stored]


def test_segments_are_stored_with_the_transcript(store):
    segs = (Segment(0.0, 2.5, "hello"), Segment(2.5, 5.0, "NATO troops"))
    save(
        store,
        [
            Post(
                "v",
                "https://youtu.be/x",
                kind="video",
                transcript="hello NATO troops",
                segments=segs,
            )
        ],
    )
    pid = post_id("src", "v")
    assert store.segments(store.db, pid) == [(0.0, "hello"), (2.5, "NATO troops")]
    assert fts(store, "transcript:troops") == [None]


def test_a_duplicate_item_in_one_response_is_stored_once(store):
    r = save(store, [Post("g", None, title="a"), Post("g", None, title="b")])
    assert r.new == 1
    assert store.db.execute("SELECT title FROM posts").fetchone()[0] == "a"


def test_database_uses_wal_and_passes_integrity_check(store):
    if on_postgresql(store):
        pytest.skip("SQLite's own")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    save(store, [Post("g", None, title="a")])
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.db.execute("INSERT INTO posts_fts(posts_fts) VALUES ('integrity-check')")


def test_failed_transaction_leaves_nothing_behind(store):
    with pytest.raises(store.errors), store.transaction() as db:
        store.save_posts(db, "src", [Post("g", None, title="a")])
        db.execute("INSERT INTO posts (id, source_id, external_id, first_seen_at, updated_at, rev) "
                   "VALUES ('x', 'src', 'g', '', '', 99)")  # fmt: skip
    assert store.db.execute("SELECT count(*) FROM posts").fetchone()[0] == 0
    assert fts(store, "a") == []


def test_a_commit_that_fails_leaves_no_transaction_open(store):
    if on_postgresql(store):
        pytest.skip("the archive's constraints are checked at once on PostgreSQL")
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as db:
        store.save_posts(db, "src", [Post("g0", None, title="lost with the commit")])
        db.execute("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT, which then fails
        db.execute("INSERT INTO post_versions (post_id, version, seen_at) VALUES ('x', 1, '')")
    assert not store.db.in_transaction
    save(store, [Post("g1", None, title="stored after")])  # the connection still works
    assert fts(store, "stored OR lost") == ["stored after"]


def test_an_archive_from_schema_version_1_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE posts (id TEXT PRIMARY KEY, source_id TEXT, external_id TEXT, url TEXT,"
        " author TEXT, title TEXT, text TEXT, kind TEXT, published_at TEXT, first_seen_at TEXT,"
        " updated_at TEXT, version INTEGER, lang TEXT, media TEXT DEFAULT '[]', transcript TEXT,"
        " rev INTEGER UNIQUE, UNIQUE (source_id, external_id));"
        "CREATE TABLE deliveries (id TEXT PRIMARY KEY, alert_id TEXT, post_id TEXT, notifier TEXT,"
        " status TEXT, attempts INTEGER, last_error TEXT, created_at TEXT, sent_at TEXT,"
        " next_attempt_at TEXT, payload TEXT, UNIQUE (alert_id, post_id, notifier));"
        "PRAGMA user_version = 1;"
    )
    db.close()
    s = Store(path)
    s.sync_sources([("src", "feed", None)])
    save(s, [Post("g", None, title="a", extra={"views": 3})])
    assert s.db.execute("SELECT extra FROM posts").fetchone()[0] == '{"views": 3}'
    assert "claimed_until" in {r[1] for r in s.db.execute("PRAGMA table_info(deliveries)")}
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    s.close()


def test_index_integrity_holds_for_folded_text_in_every_script(store):
    # The index holds folded text; SQLite's own checks (PRAGMA integrity_check runs them for
    # FTS5 from 3.44) must still find it consistent.
    save(store, [Post("g", None, title="İstanbul ısparta Ὀδυσσεύς Łódź Straße НАТО")])
    save(store, [Post("g", None, title="İstanbul edited")])
    assert integrity_ok(store)
    assert fts(store, "istanbul") == ["İstanbul edited"]


def test_an_external_content_index_from_before_version_4_is_rebuilt_contentless(tmp_path):
    path = tmp_path / "v3.db"
    s = Store(path)
    s.sync_sources([("src", "feed", None)])
    save(s, [Post("g", None, title="Łódź")])
    s.db.executescript(
        "DROP TABLE posts_fts; CREATE VIRTUAL TABLE posts_fts USING fts5(title, text, transcript,"
        " author, content = 'posts', content_rowid = 'rev',"
        " tokenize = 'unicode61 remove_diacritics 2'); PRAGMA user_version = 3;"
    )
    s.close()
    s = Store(path)
    sql = s.db.execute("SELECT sql FROM sqlite_master WHERE name = 'posts_fts'").fetchone()[0]
    assert "content = ''" in sql
    assert fts(s, "lodz") == ["Łódź"]  # the existing posts were indexed again
    s.close()


def test_fetches_a_killed_process_left_open_are_closed_by_the_upgrade(tmp_path):
    path = tmp_path / "v4.db"
    s = Store(path)
    s.db.executescript(
        "INSERT INTO fetches (source_id, started_at) VALUES ('src', '2026-11-01T10:00:00Z');"
        "INSERT INTO fetches (source_id, started_at, finished_at, ok)"
        " VALUES ('src', '2026-11-01T09:00:00Z', '2026-11-01T09:00:01Z', 1);"
        "PRAGMA user_version = 4;"
    )
    s.close()
    s = Store(path)
    rows = s.db.execute("SELECT ok, error, finished_at FROM fetches ORDER BY started_at").fetchall()
    assert [tuple(r) for r in rows] == [
        (1, None, "2026-11-01T09:00:01Z"),
        (0, "interrupted", "2026-11-01T10:00:00Z"),
    ]
    s.close()


def test_an_archive_from_version_5_counts_every_post_as_indexed_and_matched(tmp_path):
    path = tmp_path / "v5.db"
    s = Store(path)
    s.sync_sources([("src", "feed", None)])
    save(s, [Post("g1", None, title="Łódź"), Post("g2", None, title="Kyiv")])
    s.db.executescript("DROP TABLE search_state; PRAGMA user_version = 5;")
    s.close()
    s = Store(path)
    (mark,) = s.db.execute("SELECT indexed_rev FROM search_state").fetchone()
    assert mark == s.db.execute("SELECT max(rev) FROM posts").fetchone()[0]
    with s.transaction() as db:
        assert s.index_pending(db) is None  # nothing indexed twice
    assert integrity_ok(s) and fts(s, "lodz") == ["Łódź"]
    s.close()


def test_rebuilding_the_index_leaves_posts_above_the_mark_to_their_turn(store):
    save(store, [Post("g1", None, title="indexed")])
    save(store, [Post("g2", None, title="pending")], index=False)
    store.rebuild_index()
    # On PostgreSQL every post is in the index as soon as it is saved (`unmatched` lists the
    # ones the alerts have not run on), so the rebuilt index holds both.
    before = ["indexed", "pending"] if on_postgresql(store) else ["indexed"]
    assert fts(store, "indexed OR pending") == before
    with store.transaction() as db:
        store.index_pending(db)
    assert integrity_ok(store)
    assert fts(store, "indexed OR pending") == ["indexed", "pending"]


def _fetched(store: Store, posts: list[Post], started_at: str, monkeypatch) -> None:
    import monitor.archive.sqlite

    monkeypatch.setattr(monitor.archive.sqlite, "now_iso", lambda t=None: started_at)
    with store.transaction() as db:
        result = store.save_posts(db, "src", posts)
        store.finish_fetch_ok(db, "src", started_at, 200, result, {})


def test_last_new_at_is_when_a_fetch_last_found_a_post_not_seen_before(store, monkeypatch):
    _fetched(store, [Post("a", None, title="A")], "2026-11-01T10:00:00Z", monkeypatch)
    _fetched(store, [Post("a", None, title="A")], "2026-11-02T10:00:00Z", monkeypatch)
    _fetched(store, [Post("a", None, title="A, edited")], "2026-11-03T10:00:00Z", monkeypatch)
    (row,) = store.source_rows()
    assert (row["last_ok_at"], row["last_new_at"]) == ("2026-11-03T10:00:00Z",
                                                      "2026-11-01T10:00:00Z")  # fmt: skip
    _fetched(store, [Post("b", None, title="B")], "2026-11-04T10:00:00Z", monkeypatch)
    assert store.source_rows()[0]["last_new_at"] == "2026-11-04T10:00:00Z"


def test_a_fetch_starts_from_the_newest_fetch_row_and_the_sources_state(store):
    # One statement for both (every poll reads them), on either database.
    assert store.fetch_start("src") == (0, {})
    assert store.fetch_start("no such source") == (0, {})
    state = {"validators": {"https://example.org/feed": {"etag": '"v1"'}}}
    with store.transaction() as db:
        store.finish_fetch_ok(db, "src", "2026-11-01T10:00:00Z", 200, SaveResult(), state)
    newest = store.db.execute("SELECT max(id) FROM fetches").fetchone()[0]
    assert store.fetch_start("src") == (newest, state)
    assert store.fetch_start("src")[1] == store.source_state("src")


def test_an_archive_from_schema_version_11_keeps_its_snippets_and_learns_queries(tmp_path):
    # Version 12 made a snippet wait for a reader unless it is sent, from the query the match
    # row keeps: rows from before have their snippets, and no query.
    from monitor.match import stored_snippets
    from monitor.models import Match

    path = tmp_path / "v11.db"
    s = Store(path)
    s.sync_sources([("src", "feed", None)])
    save(s, [Post("g", None, title="NATO troops")])
    (pid,) = s.db.execute("SELECT id FROM posts").fetchone()
    with s.transaction() as db:
        s.add_match(db, "nato", pid, "[NATO] troops", None, [], {})
    s.db.executescript("ALTER TABLE matches DROP COLUMN query; PRAGMA user_version = 11;")
    s.close()
    s = Store(path)
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 12
    assert [tuple(r) for r in s.db.execute("SELECT snippet, query FROM matches")] == [
        ("[NATO] troops", None)
    ]
    assert stored_snippets(s.db, [Match("nato", pid, None)]) == {("nato", pid): "[NATO] troops"}
    with s.transaction() as db:
        s.add_matches(db, [("troops", pid, "2026-12-07T00:00:00Z", None, None, None, "troops")], [])
    assert stored_snippets(s.db, [Match("troops", pid, None)]) == {("troops", pid): "NATO [troops]"}
    s.close()


def test_an_archive_from_schema_version_7_learns_last_new_posts_and_matched_links(tmp_path):
    path = tmp_path / "v7.db"
    s = Store(path)
    s.sync_sources([("src", "feed", None), ("quiet", "feed", None)])
    save(s, [Post("g", None, title="a")])
    with s.transaction() as db:
        s.add_match(db, "nato", s.db.execute("SELECT id FROM posts").fetchone()[0], "a", None, [],
                    {}, "https://example.org/a")  # fmt: skip
    s.db.executescript(
        "UPDATE posts SET first_seen_at = '2026-10-05T08:00:00Z', url = 'https://example.org/a';"
        "DROP INDEX matches_alert_url; ALTER TABLE matches DROP COLUMN url;"
        "ALTER TABLE sources DROP COLUMN last_new_at; PRAGMA user_version = 7;"
    )
    s.close()
    s = Store(path)
    got = {r["id"]: r["last_new_at"] for r in s.source_rows()}
    assert got == {"quiet": None, "src": "2026-10-05T08:00:00Z"}
    # Its matches learn their links, so a second source's copy of one is not sent again.
    assert [tuple(r) for r in s.db.execute("SELECT url FROM matches")] == [
        ("https://example.org/a",)
    ]
    assert s.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'matches_alert_url'").fetchone()
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    s.close()


def test_a_new_or_upgraded_archive_merges_its_index_eight_segments_at_a_time(tmp_path):
    def automerge(s: Store) -> int | None:
        row = s.db.execute("SELECT v FROM posts_fts_config WHERE k = 'automerge'").fetchone()
        return row and row[0]

    s = Store(tmp_path / "new.db")
    assert automerge(s) == FTS_AUTOMERGE == 8
    s.db.executescript(
        "DELETE FROM posts_fts_config WHERE k = 'automerge'; PRAGMA user_version = 11;"
    )
    s.close()
    s = Store(tmp_path / "new.db")
    assert automerge(s) == 8
    s.close()
