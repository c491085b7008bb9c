"""Recorded exchanges: `monitor record` writes them, `--replay` and respx serve them back."""

from __future__ import annotations

import json
import shutil

import httpx
import respx

from monitor.cli import main
from monitor.http import Http
from monitor.recording import ReplayTransport, install_in_respx, load_exchanges
from tests.origin import Origin, Route, serve_briefing
from tests.test_end_to_end import LAVROV, OTHER, db_rows, rss, write_config


def test_record_then_replay_gives_the_same_posts_without_the_network(tmp_path, capsys):
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(
            rss(LAVROV, OTHER), etag='"v1"', gzip=True,
            headers={"Content-Type": "application/rss+xml; charset=utf-8"},
        )  # fmt: skip
        cfg = write_config(tmp_path / "m.toml", origin)
        rec = tmp_path / "rec"
        assert main(["record", "tass", str(rec), "--config", str(cfg)]) == 0
        url = origin.url("/tass.xml")
    # The origin is gone now: only the recording can answer.
    saved = load_exchanges(rec)
    assert [(e.method, e.url, e.status) for e in saved] == [("GET", url, 200)]
    assert saved[0].body.startswith(b"<?xml")  # stored decoded, readable
    assert ("content-encoding", "gzip") not in [(k.lower(), v) for k, v in saved[0].headers]
    capsys.readouterr()
    assert main(["fetch", "tass", "--replay", str(rec), "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"][0]["new"] == 2


def test_record_fetches_as_fetch_does_capped_and_hop_by_hop(tmp_path, capsys):
    """`monitor record` goes through the monitor's own client: its size cap refuses a body
    before anything is saved, and a redirect is kept as the hop it was, so a replay follows it."""
    with Origin() as origin:
        origin.routes["/old.xml"] = Route(status=301, headers={"Location": "/tass.xml"})
        origin.routes["/tass.xml"] = Route(
            rss(LAVROV, OTHER), headers={"Content-Type": "application/rss+xml"}
        )
        origin.routes["/huge.xml"] = Route(b"<rss>" + b" " * 4000 + b"</rss>", gzip=True)
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nmax_body = "2KB"\n'
            f'[sources.moved]\ntype = "feed"\nurl = "{origin.url("/old.xml")}"\n'
            f'[sources.huge]\ntype = "feed"\nurl = "{origin.url("/huge.xml")}"\n'
        )
        rec = tmp_path / "rec"
        assert main(["record", "huge", str(rec), "--config", str(cfg)]) == 1
        assert "response too large" in capsys.readouterr().err
        assert not rec.exists() or load_exchanges(rec) == []
        assert main(["record", "moved", str(rec), "--config", str(cfg)]) == 0
        assert origin.gets("/tass.xml")[0].headers["user-agent"].startswith("outlet-monitor/")
    hops = [(e.url.rsplit("/", 1)[1], e.status) for e in load_exchanges(rec)]
    assert hops == [("old.xml", 301), ("tass.xml", 200)]
    capsys.readouterr()
    assert main(["fetch", "moved", "--replay", str(rec), "--config", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sources"][0]["new"] == 2


async def test_unrecorded_url_fails_like_an_unreachable_host(tmp_path):
    async with Http(transport=ReplayTransport([])) as http:
        try:
            await http.get("https://example.org/feed")
        except Exception as e:  # noqa: BLE001
            assert "no recorded exchange for GET https://example.org/feed" in str(e)
        else:
            raise AssertionError("expected a failure")


async def test_demo_recording_loads_into_respx():
    exchanges = load_exchanges("fixtures/demo")
    assert len(exchanges) >= 8
    with respx.mock(assert_all_called=False) as router:
        install_in_respx(router, exchanges)
        async with httpx.AsyncClient() as client:
            r = await client.get("https://tass.com/rss/v2.xml")
    assert r.status_code == 200 and b"Lavrov" in r.content


def test_a_video_source_records_yt_dlp_answers_and_replays_them_offline(tmp_path, capsys):
    """`monitor record` keeps yt-dlp's answers too, so `--replay` never reaches the network."""
    from monitor import ytdlp

    with Origin() as origin:
        serve_briefing(origin)
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nallow_private = true\n'
            f'[sources.briefing]\ntype = "video"\nurl = "{origin.url("/briefing.html")}"\n'
            "speech_to_text = false\n"
        )
        rec = tmp_path / "rec"
        try:
            assert main(["record", "briefing", str(rec), "--config", str(cfg)]) == 0
        finally:
            ytdlp.record_to(None)
    assert "yt-dlp extractions" in capsys.readouterr().out
    try:
        assert main(["fetch", "--replay", str(rec), "--config", str(cfg), "--json"]) == 0
    finally:
        ytdlp.use_recording(None)
        ytdlp.shutdown()
    out = json.loads(capsys.readouterr().out)
    assert out["sources"][0]["new"] == 1
    rows = db_rows(tmp_path / "m.db", "SELECT transcript FROM posts")
    assert rows[0][0]  # the transcript came from the recording


def test_a_broken_recording_file_is_named(tmp_path, capsys):
    rec = tmp_path / "rec"
    shutil.copytree("fixtures/demo", rec)
    broken = sorted(p for p in rec.glob("*.json") if ".body." not in p.name)[0]
    broken.write_text("{request: ")
    code = main(["fetch", "--replay", str(rec), "--config", "config/demo.toml",
                 "--db", str(tmp_path / "m.db")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"monitor: --replay: {broken}: not a recorded exchange: Expecting")


def test_a_source_named_twice_is_fetched_once(tmp_path, capsys):
    code = main(["fetch", "tass-en", "tass-en", "--replay", "fixtures/demo", "--config",
                 "config/demo.toml", "--db", str(tmp_path / "m.db"), "--json"])  # fmt: skip
    assert code == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)["sources"]] == ["tass-en"]
