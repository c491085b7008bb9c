"""An archive that is missing, not a database or out of reach is a one-line error, exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path]:
    """(config, archive) after the offline demo's pass."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg, db = tmp_path / "config/demo.toml", tmp_path / "monitor.db"
    code = main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config", str(cfg),
                 "--db", str(db), "--no-alerts", "-q"])  # fmt: skip
    assert code == 0
    return cfg, db


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("command", [["search", "NATO"], ["alerts"], ["sources"]])
def test_reading_commands_do_not_make_an_archive_where_there_is_none(tmp_path, command, capsys):
    missing = tmp_path / "monitor.db"
    cfg = ROOT / "config/demo.toml"
    assert main([*command, "--config", str(cfg), "--db", str(missing)]) == 2
    assert one_line_error(capsys) == (
        f"monitor: no archive at {missing} (`monitor fetch` or `monitor run` makes it)\n"
    )
    assert not missing.exists()


@pytest.mark.parametrize("command", [["search", "NATO"], ["fetch", "nato-news"], ["sources"]])
def test_db_in_a_missing_directory_is_refused_not_made(tmp_path, command, capsys):
    missing = tmp_path / "typo" / "monitor.db"
    cfg = ROOT / "config/demo.toml"
    argv = [*command, "--config", str(cfg), "--db", str(missing)]
    assert main(argv) == 2
    assert one_line_error(capsys) == (
        f"monitor: --db: there is no directory {missing.parent} (make it first)\n"
    )
    assert not missing.parent.exists()


def test_sources_lists_the_configuration_before_any_archive_exists(tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the demo's database, demo.db, is relative to here
    cfg = ROOT / "config/demo.toml"
    assert main(["sources", "--config", str(cfg), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 9 and not list(tmp_path.iterdir())
    assert main(["sources", "--config", str(cfg)]) == 0
    out = capsys.readouterr()
    assert "never fetched" in out.out and "(no archive at demo.db yet: nothing fetched)" in out.err


def test_check_checks_the_archive_it_is_given(tmp_path, demo, capsys):
    cfg, db = demo
    capsys.readouterr()
    assert main(["check", "--config", str(cfg), "--db", str(db)]) == 0
    assert f"database {db} (schema " in capsys.readouterr().out
    garbled = tmp_path / "garbled.db"
    garbled.write_text("# not a database\n" * 100)
    assert main(["check", "--config", str(cfg), "--db", str(garbled), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["problems"] == [
        f"--db: {garbled} cannot be read as an archive: file is not a database"
    ]
    assert main(["check", "--config", str(cfg), "--db", str(tmp_path / "nope" / "m.db")]) == 2
    assert f"--db: there is no directory {tmp_path / 'nope'}" in capsys.readouterr().out


def test_an_archive_in_a_read_only_place_says_so(tmp_path, capsys):
    import os
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True
        ).returncode
    ):
        pytest.skip("needs root to mount a read-only file system")
    try:
        cfg = ROOT / "config/demo.toml"
        db = ro / "monitor.db"
        argv = ["fetch", "nato-news", "--replay", str(ROOT / "fixtures/demo"), "--db", str(db)]
        assert main([*argv, "--config", str(cfg)]) == 2
        assert one_line_error(capsys) == (
            f"monitor: cannot make the archive {db}: the directory {ro} is not writable here\n"
        )
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_text("# not a database\n" * 100), "file is not a database"),
        (lambda p: p.mkdir(), "unable to open database file"),
    ],
    ids=["a text file", "a directory"],
)
@pytest.mark.parametrize("command", [["fetch", "nato-news"], ["search", "NATO"], ["sources"]])
def test_a_path_that_is_no_archive_is_named_with_the_reason(tmp_path, make, reason, command,
                                                            capsys):  # fmt: skip
    bad = tmp_path / "monitor.db"
    make(bad)
    cfg = ROOT / "config/demo.toml"
    argv = [*command, "--config", str(cfg), "--db", str(bad)]
    assert (
        main([*argv, "--replay", str(ROOT / "fixtures/demo")] if "fetch" in command else argv) == 2
    )
    assert one_line_error(capsys) == f"monitor: cannot open the archive {bad}: {reason}\n"


def test_an_archive_under_a_file_is_named(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("")
    bad = tmp_path / "notes.txt" / "monitor.db"
    cfg = ROOT / "config/demo.toml"
    assert main(["fetch", "nato-news", "--replay", str(ROOT / "fixtures/demo"),
                 "--config", str(cfg), "--db", str(bad)]) == 2  # fmt: skip
    assert one_line_error(capsys) == f"monitor: --db: {bad.parent} is a file, not a directory\n"


def test_search_names_a_source_it_does_not_know(demo, capsys):
    cfg, db = demo
    argv = ["search", "NATO", "--config", str(cfg), "--db", str(db)]
    assert main([*argv, "--source", "tass"]) == 2
    assert one_line_error(capsys) == (
        "monitor: --source: no source 'tass' in the configuration or the archive "
        "(did you mean 'tass-ru'?)\n"
    )
    assert main([*argv, "--source", "tass-en", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and {h["source_id"] for h in hits} == {"tass-en"}


def test_search_json_gives_media_and_extra_as_json_not_strings(demo, capsys):
    cfg, db = demo
    assert main(["search", "Lavrov", "--json", "--config", str(cfg), "--db", str(db)]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(isinstance(h["media"], list) and isinstance(h["extra"], dict) for h in hits)
    assert any(h["media"] for h in hits) and any(h["extra"] for h in hits)


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_limit_must_be_at_least_one(demo, limit, capsys):
    cfg, db = demo
    with pytest.raises(SystemExit) as exited:
        main(["search", "NATO", "--limit", limit, "--config", str(cfg), "--db", str(db)])
    assert exited.value.code == 2
    assert (
        f"--limit: must be a whole number of at least 1, got {limit!r}" in capsys.readouterr().err
    )


def test_a_parse_worker_that_cannot_start_leaves_the_parsing_to_the_fetching_process(
    tmp_path, monkeypatch, capsys, caplog
):
    from monitor.parsework import ParseWorker

    def refused() -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ParseWorker, "start", staticmethod(refused))
    cfg = ROOT / "config/demo.toml"
    assert main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config", str(cfg),
                 "--db", str(tmp_path / "m.db"), "--no-alerts", "--json"]) == 0  # fmt: skip
    assert "cannot start the parse worker ([Errno 13] Permission denied)" in caplog.text
    assert sum(s["new"] for s in json.loads(capsys.readouterr().out)["sources"]) == 15


@pytest.mark.parametrize("command", ["sources", "check"])
def test_without_a_configuration_anywhere_the_places_looked_are_named(tmp_path, monkeypatch,
                                                                      capsys, command):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    assert main([command]) == 2
    assert one_line_error(capsys) == (
        "monitor: no configuration: none at ./monitor.toml or ./config/monitor.toml "
        "(give --config PATH or set MONITOR_CONFIG)\n"
    )


def test_record_suggests_the_source_id_that_was_meant(demo, tmp_path, capsys):
    cfg, _ = demo
    assert main(["record", "tass-em", str(tmp_path / "rec"), "--config", str(cfg)]) == 2
    assert "no source 'tass-em' in the configuration (did you mean 'tass-en'?)" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["search", '"open', "--json"], {"ok": False, "position": 0}),
        (
            ["fetch", "nosuch", "--json"],
            {"ok": False, "error": "no source 'nosuch' in the configuration"},
        ),
        (["search", "NATO", "--json", "--source", "nosuch"], {"ok": False}),
    ],
    ids=["bad query", "unknown source", "unknown search source"],
)
def test_json_commands_answer_a_usage_error_with_a_json_document(demo, argv, want, capsys):
    cfg, db = demo
    assert main([*argv, "--config", str(cfg), "--db", str(db)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc.items() >= want.items() and doc["error"]


def test_json_commands_answer_a_configuration_error_with_its_problems(tmp_path, capsys):
    cfg = tmp_path / "m.toml"
    cfg.write_text('[sources.a]\ntype = "feed"\nurl = "https://example.org/rss"\nevery = 15\n')
    assert main(["fetch", "--json", "--config", str(cfg)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"ok": False, "config": str(cfg), "problems": [
        "sources.a.every: a duration needs its unit: write 15s, 15m, 15h or 15d"]}  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [["search", "NATO", "--limit", "0"], ["alerts", "--status", "lost"], ["sources", "--nope"]],
    ids=["bad limit", "bad choice", "unknown option"],
)
def test_json_commands_answer_an_argument_error_with_a_json_document(demo, argv, capsys):
    cfg, db = demo
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--json", "--config", str(cfg), "--db", str(db)])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["ok"] is False and doc["error"] in err and "usage:" in err
