"""Extreme configuration and archive state: a clear error or a repair, never a traceback."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor.archive.sqlite import SCHEMA_VERSION
from monitor.cli import main
from tests.origin import Origin, Route
from tests.test_daemon import start, stop, wait_for
from tests.test_end_to_end import LAVROV, OTHER, db_rows, rss, write_config

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [["check"], ["fetch"], ["run"], ["search", "NATO"], ["sources"], ["alerts"]]


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path]:
    """(config, archive) after the offline demo's pass."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg, db = tmp_path / "config/demo.toml", tmp_path / "monitor.db"
    assert main(["fetch", "--replay", str(ROOT / "fixtures/demo"), "--config", str(cfg),
                 "--db", str(db), "--no-alerts", "-q"]) == 0  # fmt: skip
    return cfg, db


def error_of(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return out + err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_duration_past_a_hundred_years_is_refused_with_its_key(demo, command, capsys):
    cfg, db = demo  # an archive whose sources were fetched: "timestamp out of range" before
    text = cfg.read_text()
    assert 'every = "10m"' in text
    cfg.write_text(text.replace('every = "10m"', 'every = "99999999999999999999d"', 1))
    assert main([*command, "--config", str(cfg), "--db", str(db)]) == 2
    assert (
        "monitor.every: must be at most 36500d (a hundred years), got '99999999999999999999d'"
        in error_of(capsys)
    )
    # A hundred years is still a schedule: read, shown and scheduled from the archive's times.
    cfg.write_text(text.replace('every = "10m"', 'every = "36500d"', 1))
    assert main(["sources", "--config", str(cfg), "--db", str(db)]) == 0
    assert "every 36500d" in error_of(capsys)
    since = ["search", "NATO", "--since", "99999999999999999999d"]
    assert main([*since, "--config", str(cfg), "--db", str(db)]) == 2
    assert "--since: cannot read '99999999999999999999d'" in error_of(capsys)


@pytest.mark.parametrize(
    "deep",
    [
        "x = " + "[" * 5000 + "]" * 5000,
        "x = " + "{a = " * 5000 + "1" + "}" * 5000,
        "[monitor]\n" + ".".join(["a"] * 5000) + " = 1",
        "[" + ".".join(["a"] * 5000) + "]\nb = 1",
    ],
    ids=["arrays", "inline tables", "dotted key", "table header"],
)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_5000_deep_configuration_is_a_clear_error_in_every_command(tmp_path, deep, command,
                                                                     capsys):  # fmt: skip
    cfg = tmp_path / "deep.toml"
    cfg.write_text(deep + "\n")
    assert main([*command, "--config", str(cfg), "--db", str(tmp_path / "m.db")]) == 2
    assert "nested too deeply to read" in error_of(capsys)


def test_a_garbled_archive_page_makes_search_say_the_archive_is_damaged(demo, capsys):
    cfg, db = demo
    clean = db.read_bytes()
    # Every page of the posts table and of the search index, garbled in turn.
    con = sqlite3.connect(db)
    pages = [
        r[0]
        for r in con.execute(
            "SELECT pageno FROM dbstat WHERE name IN ('posts', 'posts_fts_data', 'posts_fts_idx')"
        )
    ]
    con.close()
    assert pages
    rng = random.Random(12)
    damaged = 0
    for page in pages:
        garbled = bytearray(clean)
        at = (page - 1) * 4096
        garbled[at : at + 4096] = rng.randbytes(4096)
        db.write_bytes(bytes(garbled))
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        code = main(["search", "NATO", "--config", str(cfg), "--db", str(db)])
        said = error_of(capsys)
        if code == 0:
            continue  # a page the query did not need
        assert code == 2
        assert f"monitor: the archive {db} is damaged (" in said, said
        assert f"`sqlite3 {db} .recover`" in said
        damaged += 1
    assert damaged, "no garbled page was read: the test tested nothing"


@pytest.mark.slow
def test_a_dropped_search_state_table_is_made_again_and_run_goes_on(tmp_path):
    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(b"", status=500)
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"))
        cfg.write_text(cfg.read_text().replace('every = "1h"', 'every = "1s"'))
        db = tmp_path / "monitor.db"
        assert main(["fetch", "tass", "--config", str(cfg), "-q"]) == 0
        con = sqlite3.connect(db)
        con.execute("DROP TABLE search_state")
        con.close()
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v2"')
        log = tmp_path / "run.log"
        proc = start(cfg, log)
        try:
            assert wait_for(lambda: hook.posts(), 30), log.read_text()  # the new post alerts
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert "the search_state table was missing; made again, and the search index rebuilt" in text
    assert db_rows(db, "SELECT count(*) FROM posts")[0][0] == 2
    assert db_rows(db, "SELECT count(*) FROM posts_fts_docsize")[0][0] == 2  # both searchable
    assert db_rows(db, "SELECT indexed_rev FROM search_state")[0][0] == 2


@pytest.mark.parametrize("command", [["fetch"], ["search", "NATO"], ["sources"], ["alerts"]],
                         ids=lambda c: c[0])  # fmt: skip
def test_an_archive_of_a_newer_schema_is_refused_and_left_untouched(demo, command, capsys):
    cfg, db = demo
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.execute("PRAGMA journal_mode = DELETE")  # so that any write would show in the file
    con.close()
    before = db.read_bytes()
    argv = [*command, "--config", str(cfg), "--db", str(db)]
    if command == ["fetch"]:
        argv += ["--replay", str(ROOT / "fixtures/demo")]
    assert main(argv) == 2
    assert error_of(capsys) == (
        f"monitor: the archive {db} has schema version {SCHEMA_VERSION + 1}, newer than this "
        f"outlet-monitor's {SCHEMA_VERSION}: upgrade outlet-monitor to use it (the archive "
        "was left untouched)\n"
    )
    assert db.read_bytes() == before
    assert not Path(f"{db}-wal").exists()
