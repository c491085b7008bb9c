"""The archive opens in Datasette and its search box uses the monitor's folded index."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from monitor.cli import main

datasette_app = pytest.importorskip("datasette.app")
ROOT = Path(__file__).resolve().parents[1]


def test_datasette_search_box_finds_posts_in_any_script(tmp_path, capsys):
    db = tmp_path / "monitor.db"
    shutil.copytree(ROOT / "config", tmp_path / "config")
    code = main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config",
                 str(tmp_path / "config/demo.toml"), "--db", str(db), "-q"])  # fmt: skip
    assert code == 0
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

    asyncio.run(checks())
