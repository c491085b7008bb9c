"""The archive opens in Datasette through the monitor's plugin: its search, columns and matches page."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.recording import Exchange, save_exchange

datasette_app = pytest.importorskip("datasette.app")
ROOT = Path(__file__).resolve().parents[1]
DW_FEED = "https://www.dw.com/rss/de-top.xml"


def fill_archive(tmp_path: Path, db: Path) -> Path:
    """The offline demo's archive, plus posts only the monitor's folding and prefixes find."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    code = main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config",
                 str(tmp_path / "config/demo.toml"), "--db", str(db), "-q"])  # fmt: skip
    assert code == 0
    # unicode61 alone keeps ß and ı apart from ss and i; Datasette's own search box quotes
    # `manh*` into a phrase and finds no prefix at all.
    rec = tmp_path / "rec"
    save_exchange(rec, Exchange("GET", DW_FEED, 200, [("Content-Type", "application/rss+xml")], (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>DW</title>"
        "<item><title>Sperrung der Straße nach Iğdır</title><link>https://www.dw.com/a-1</link>"
        "</item><item><title>Manhattan: UN-Sitzung zu Truppen in der Ukraine</title>"
        "<link>https://www.dw.com/a-2</link></item>"
        "<item><title>&amp;lt;img src=x onerror=alert(1)&amp;gt; NATO [UPDATE 2] troops Ukraine</title>"
        "<link>javascript:alert(2)</link><description>NATO troops &amp; Ukraine &lt;b&gt;bold&lt;/b&gt;"
        "</description></item></channel></rss>").encode()))  # fmt: skip
    cfg = tmp_path / "dw.toml"
    cfg.write_text(
        f'[monitor]\ndatabase = "{db}"\n[sources.dw]\ntype = "feed"\nurl = "{DW_FEED}"\n'
        "[alerts.nato-troops-ukraine]\nquery = 'NATO troops Ukraine'\n"
    )
    assert main(["fetch", "--replay", str(rec), "--config", str(cfg), "-q"]) == 0
    return cfg


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("archive")
    # Any file name: the plugin recognises an archive by its tables, not by a metadata key.
    db = tmp / "desk-archive.db"
    return db, fill_archive(tmp, db)


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


async def started(*paths: Path):  # noqa: ANN201
    ds = datasette_app.Datasette([str(p) for p in paths])
    await ds.invoke_startup()
    return ds


def monitor_search_ids(cfg: Path, db: Path, query: str, capsys) -> set[str]:  # noqa: ANN001
    import json

    capsys.readouterr()
    assert main(["search", query, "--config", str(cfg), "--db", str(db), "--json",
                 "--limit", "1000"]) == 0  # fmt: skip
    return {hit["id"] for hit in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(
    "query",
    ["deploy*", "manh*", "войск*", "нато", "troupes", "Türkiye", "strasse igdir", "istanbul",
     '"NATO troops"', "NATO -Ukraine", "troops OR forces", "title:Lavrov", "NEAR(NATO troops, 5)"],
)  # fmt: skip
def test_search_box_finds_what_monitor_search_finds(archive, query, capsys):
    db, cfg = archive
    expected = monitor_search_ids(cfg, db, query, capsys)

    async def search() -> set[str]:
        ds = await started(db)
        r = await ds.client.get(
            "/desk-archive/posts.json", params={"_search": query, "_shape": "array", "_col": "id"}
        )
        assert r.status_code == 200, r.text
        return {row["id"] for row in r.json()}

    assert run(search()) == expected
    if query in ("deploy*", "manh*", "войск*", "strasse igdir"):
        assert expected, f"{query} should find something in the test archive"


def test_search_box_refuses_a_bad_query_with_its_column(archive):
    db, _ = archive

    async def go():  # noqa: ANN202
        ds = await started(db)
        return await ds.client.get("/desk-archive/posts.json", params={"_search": "NATO AND"})

    r = run(go())
    assert r.status_code == 400
    assert "bad query: AND needs a term on each side at column 6" in r.json()["error"]

    async def per_column():  # noqa: ANN202
        ds = await started(db)
        return await ds.client.get("/desk-archive/posts.json", params={"_search_title": "Lavrov"})

    r = run(per_column())
    assert r.status_code == 400 and "_search=title:word" in r.json()["error"]


def test_posts_page_has_a_search_box_and_the_desk_columns_first(archive):
    db, _ = archive

    async def go() -> str:
        ds = await started(db)
        r = await ds.client.get("/desk-archive/posts")
        assert r.status_code == 200
        return r.text

    page = run(go())
    assert 'name="_search"' in page
    columns = re.findall(r'<th [^>]*data-column="([^"]+)"', page)
    assert columns[:4] == ["title", "source_id", "published_at", "url"]
    assert columns[-3:] == ["id", "external_id", "rev"]
    # Cells follow their headers: each row's first cell is the title.
    first_cells = re.findall(r"<tr>\s*<td class=\"col-([\w-]+)", page)
    assert first_cells and set(first_cells) == {"title"}
    assert "/desk-archive/-/latest-matches" in page  # the table's actions link to matches


def test_latest_matches_page_marks_words_escapes_and_links_to_the_second(archive):
    db, _ = archive

    async def go() -> str:
        ds = await started(db)
        r = await ds.client.get("/desk-archive/-/latest-matches")
        assert r.status_code == 200
        return r.text

    page = run(go())
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)[1:]
    assert len(rows) >= 5
    video = next(r for r in rows if "trt-world-youtube" in r and ">nato-troops-ukraine<" in r)
    assert 'href="https://www.youtube.com/watch?v=Lq3mXo9vT2k&amp;t=17s"' in video
    assert "<mark>NATO</mark> <mark>troops</mark> to <mark>Ukraine</mark>" in video
    hostile = next(r for r in rows if "UPDATE 2" in r)
    assert "<img" not in hostile and "&lt;img src=x onerror=alert(1)&gt;" in hostile
    assert "<mark>NATO</mark> <mark>troops</mark> &amp; <mark>Ukraine</mark>" in hostile
    for cell in ("2026-11-19 12:40 UTC", "nato-troops-ukraine", "nato-news"):
        assert cell in page


def test_latest_matches_filters_by_alert_and_answers_json(archive):
    db, _ = archive

    async def go():  # noqa: ANN202
        ds = await started(db)
        return await ds.client.get(
            "/desk-archive/-/latest-matches", params={"alert": "voyska-nato", "_format": "json"}
        )

    matches = run(go()).json()
    assert [m["alert"] for m in matches] == ["voyska-nato"]
    assert "<mark>НАТО</mark>" in matches[0]["snippet"]
    assert matches[0]["link"].startswith("https://")


def test_matches_not_sent_show_their_snippets_in_the_table_and_in_sql(archive):
    # A match that was not sent keeps its query, not a snippet (matches.snippet is NULL):
    # the table view and SQL make it from the query and the post.
    db, _ = archive
    conn = sqlite3.connect(db)
    (waiting,) = conn.execute(
        "SELECT count(*) FROM matches WHERE snippet IS NULL AND alert_id = 'voyska-nato'"
    ).fetchone()
    conn.close()
    assert waiting == 1
    sql = (
        "SELECT coalesce(m.snippet, monitor_snippet(m.query, p.title, p.text, p.transcript, "
        "p.author)) AS s FROM matches m JOIN posts p ON p.id = m.post_id "
        "WHERE m.alert_id = 'voyska-nato'"
    )

    async def go():  # noqa: ANN202
        ds = await started(db)
        table = await ds.client.get("/desk-archive/matches", params={"alert_id": "voyska-nato"})
        row = await ds.client.get("/desk-archive.json", params={"sql": sql, "_shape": "array"})
        return table, row

    table, row = run(go())
    assert table.status_code == 200
    cells = re.findall(r'<td class="col-snippet[^"]*">(.*?)</td>', table.text, re.S)
    assert len(cells) == 1 and "[НАТО]" in cells[0]
    (made,) = row.json()
    assert "[НАТО]" in made["s"] and made["s"] == cells[0].strip()


def test_a_database_that_is_not_an_archive_keeps_datasettes_own_search(tmp_path, archive):
    other = tmp_path / "notes.db"
    conn = sqlite3.connect(other)
    conn.executescript(
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT, title TEXT);"
        "INSERT INTO posts VALUES (1, 'manhattan project', 'b');"
        "CREATE VIRTUAL TABLE posts_fts USING fts5(body, title, content='posts', content_rowid='id');"
        "INSERT INTO posts_fts (rowid, body, title) SELECT id, body, title FROM posts;"
    )  # fmt: skip
    conn.commit()
    conn.close()
    db, _ = archive

    async def go():  # noqa: ANN202
        ds = await started(db, other)
        page = await ds.client.get("/notes/posts")
        # Datasette's escape_fts quotes each word as it is: "-manhattan" is the word, not
        # an exclusion, and "AND" a word (the monitor's language refuses both alone).
        dash = await ds.client.get("/notes/posts.json?_search=-manhattan&_shape=array")
        bare = await ds.client.get("/notes/posts.json?_search=project AND&_shape=array")
        matches = await ds.client.get("/notes/-/latest-matches")
        return page, dash.json(), bare.status_code, matches.status_code

    page, dash, bare, status = run(go())
    assert re.findall(r'<th [^>]*data-column="([^"]+)"', page.text) == ["id", "body", "title"]
    assert [r["id"] for r in dash] == [1]
    assert bare == 200
    assert status == 404
