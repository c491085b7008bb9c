"""The archive opens in Datasette and its search box uses the monitor's folded index."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.recording import Exchange, save_exchange

datasette_app = pytest.importorskip("datasette.app")
ROOT = Path(__file__).resolve().parents[1]


def test_datasette_search_box_finds_posts_in_any_script(tmp_path, capsys):
    db = tmp_path / "monitor.db"
    shutil.copytree(ROOT / "config", tmp_path / "config")
    code = main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config",
                 str(tmp_path / "config/demo.toml"), "--db", str(db), "-q"])  # fmt: skip
    assert code == 0
    # A post only the monitor's own folding finds: unicode61 alone keeps ß and ı apart from
    # ss and i, so a search box on a plain index would miss it.
    rec, feed = tmp_path / "rec", "https://www.dw.com/rss/de-top.xml"
    save_exchange(rec, Exchange("GET", feed, 200, [("Content-Type", "application/rss+xml")], (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>DW</title>"
        "<item><title>Sperrung der Straße nach Iğdır</title><link>https://www.dw.com/a-1</link>"
        "</item></channel></rss>").encode()))  # fmt: skip
    cfg = tmp_path / "dw.toml"
    cfg.write_text(f'[monitor]\ndatabase = "{db}"\n[sources.dw]\ntype = "feed"\nurl = "{feed}"\n')
    assert main(["fetch", "--replay", str(rec), "--config", str(cfg), "-q", "--no-alerts"]) == 0
    metadata = json.loads((ROOT / "config/datasette.json").read_text())
    ds = datasette_app.Datasette([str(db)], metadata=metadata)

    async def search(term: str) -> list[str]:
        r = await ds.client.get(f"/monitor/posts.json?_search={term}&_shape=array&_col=title")
        assert r.status_code == 200, r.text
        return [row["title"] for row in r.json()]

    async def checks() -> None:
        assert any("Песков" in t for t in await search("нато"))
        assert any("troupes au sol" in t for t in await search("troupes"))
        assert any("Türkiye" in t for t in await search("Türkiye"))
        assert await search("nosuchwordanywhere") == []
        assert await search("strasse igdir") == ["Sperrung der Straße nach Iğdır"]

    asyncio.run(checks())
