"""The README's `sqlite-utils` commands work, as written, on an archive the demo built."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[list[str]]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return [shlex.split(line) for line in lines if line.startswith(".venv/bin/sqlite-utils ")]


def test_readme_sqlite_utils_commands_read_the_archive(tmp_path, capsys):
    db = tmp_path / "monitor.db"
    shutil.copytree(ROOT / "config", tmp_path / "config")
    code = main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config",
                 str(tmp_path / "config/demo.toml"), "--db", str(db), "--no-alerts", "-q"])  # fmt: skip
    assert code == 0
    (tmp_path / "nothing").mkdir()  # a replay with no answers: the source's fetch fails
    code = main(["fetch", "tass-en", "--replay", str(tmp_path / "nothing"), "--config",
                 str(tmp_path / "config/demo.toml"), "--db", str(db), "--no-alerts", "-q"])  # fmt: skip
    assert code == 1
    commands = readme_commands()
    assert len(commands) == 3

    def run(argv: list[str]) -> str:
        argv = [str(db) if a == "monitor.db" else a for a in argv[1:]]
        done = subprocess.run(
            [sys.executable, "-m", "sqlite_utils", *argv], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    tables = {line.split()[0]: line.split()[1] for line in run(commands[0]).splitlines()[2:]}
    assert int(tables["posts"]) > 0 and int(tables["fetches"]) == 10
    matches = json.loads(run(commands[1]))
    assert {m["alert_id"] for m in matches} >= {"nato-troops-ukraine", "lavrov-macron"}
    assert all(m["title"] and m["url"] for m in matches)
    failed = run(commands[2]).splitlines()
    assert failed[0].split() == ["source_id", "started_at", "http_status", "error"]
    assert len(failed) == 3 and failed[2].startswith("tass-en ")
    assert "no recorded exchange" in failed[2]
