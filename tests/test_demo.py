"""The README's offline demo replays the seed story and finds it, in three languages and a video."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_offline_demo_finds_the_seed_story(tmp_path, capsys, monkeypatch):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "fixtures" / "demo", tmp_path / "demo")
    monkeypatch.chdir(tmp_path)
    code = main(["fetch", "--replay", "demo", "--config", "config/demo.toml", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    matches = {(s["id"], m["alert"]): m for s in out["sources"] for m in s["matches"]}
    assert {("nato-news", "nato-troops-ukraine"), ("kremlin-news", "nato-troops-ukraine"),
            ("tass-en", "nato-troops-ukraine"), ("tass-en", "lavrov-macron"),
            ("tass-ru", "voyska-nato"), ("elysee", "troupes-au-sol"),
            ("trt-world-youtube", "nato-troops-ukraine")} <= set(matches)  # fmt: skip
    # Every page the demo reads is recorded: no source notes a missing exchange.
    assert [n for s in out["sources"] for n in s["notices"] if "no recorded" in n] == []
    said = matches[("trt-world-youtube", "nato-troops-ukraine")]
    assert said["offset"] == 17.3  # the second the words are said in the video
    db = tmp_path / "demo.db"
    assert db.exists()
    capsys.readouterr()
    main(["alerts", "--config", "config/demo.toml", "--json"])
    assert json.loads(capsys.readouterr().out) == []  # the demo's alerts notify nobody


def test_the_demo_as_a_command_prints_its_whole_report_before_it_exits(tmp_path):
    # `monitor` leaves without tearing the interpreter down: what it printed must be out.
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "fixtures" / "demo", tmp_path / "demo")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a real buffer
    cmd = [sys.executable, "-m", "monitor", "fetch", "--replay", "demo", "--config",
           "config/demo.toml", "--json"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    assert len(report["sources"]) == 9 and report["ok"] is True


def test_the_demo_says_how_to_search_what_it_stored(tmp_path, capsys, monkeypatch):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    assert main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config",
                 "config/demo.toml"]) == 0  # fmt: skip
    hint = capsys.readouterr().out.splitlines()[-1]
    assert (
        hint
        == "search what it stored: monitor search 'NATO troops Ukraine' --config config/demo.toml"
    )
    # ... and that command finds what the pass stored.
    assert main(["search", "NATO troops Ukraine", "--config", "config/demo.toml"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("results")
