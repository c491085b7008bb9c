"""A full disk is named and survived: every write fails cleanly, nothing stored is lost.

As root the archive lives on a real 24 MB tmpfs that a ballast file fills (SQLite then fails at
COMMIT, or says "disk I/O error" when its WAL index can't grow); elsewhere SQLite's page cap
stands in for the disk (tests/faults/disk.py).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from monitor import runner
from monitor.cli import main
from tests.faults.disk import disk
from tests.origin import Origin, Route
from tests.test_end_to_end import LAVROV, OTHER, db_rows, rss

ROOT = Path(__file__).resolve().parents[2]


def items(feed: str, n: int, start: int = 0, hot: bool = True) -> list[tuple[str, str, str]]:
    text = "NATO troops in Ukraine, the minister said" if hot else "The economy grew"
    return [
        (f"{feed}-{i}", f"Item {i} of {feed}", f"{text} ({i}). " + "Word " * 40)
        for i in range(start, start + n)
    ]


def write_config(path: Path, origin: Origin, hook: Origin, feeds: list[str]) -> Path:
    sources = "".join(
        f'[sources.{f}]\ntype = "feed"\nurl = "{origin.url(f"/{f}.xml")}"\n\n' for f in feeds
    )
    path.write_text(
        f"""
[monitor]
database = "{path.parent / "monitor.db"}"
every = "1h"
timeout = "5s"

{sources}
[alerts.nato]
query = 'NATO troops Ukraine'
notify = ["hook"]

[notifiers.hook]
type = "webhook"
url = "{hook.url("/hook")}"
""",
        encoding="utf-8",
    )
    return path


def one_id_per_delivery(hook: Origin) -> None:
    """No (alert, post) went out under two ids."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for post in hook.posts():
        body = json.loads(post.body)
        ids[body["alert"], body["post"]["id"]].add(post.headers["webhook-id"])
    assert all(len(v) == 1 for v in ids.values()), ids


def test_a_disk_that_fills_before_the_matching_reports_no_match_and_loses_nothing(
    tmp_path, monkeypatch, capsys
):
    with disk(tmp_path) as d, Origin() as origin, Origin() as hook:
        print(f"disk: {d.kind}")
        d.install_here(monkeypatch)
        hook.post_statuses = [500]  # the first pass's alert waits in the outbox
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER))
        cfg = write_config(d.dir / "m.toml", origin, hook, ["tass"])
        db = d.dir / "monitor.db"
        assert main(["fetch", "--config", str(cfg), "-q"]) == 0
        con = sqlite3.connect(db)
        con.execute("UPDATE deliveries SET next_attempt_at = created_at")  # its retry is due
        con.commit()
        con.close()

        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER, *items("tass", 50)))
        real = runner.match_pending

        def disk_fills(conn: sqlite3.Connection, store, config):  # type: ignore[no-untyped-def]
            d.fill(db, 0, db=conn)  # the posts are saved; the alerts' writes will not fit
            return real(conn, store, config)

        monkeypatch.setattr(runner, "match_pending", disk_fills)
        capsys.readouterr()
        assert main(["fetch", "--config", str(cfg)]) == 1
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        # Not "1 new match" nor "51": the transaction that made them was rolled back.
        assert "tass  50 new, 0 updated\n1 source, 0 failed, 0 new matches" in out, out
        full = f"cannot write to the archive {db}: the disk is full ("
        assert f"  the alerts could not run: {full}" in out, out
        assert db_rows(db, "SELECT count(*) FROM matches")[0][0] == 1
        assert db_rows(db, "SELECT count(*) FROM posts")[0][0] == 52  # saved before it filled
        if d.tmpfs:  # (a page cap lets a write that needs no new page through)
            assert f"  delivery error: the deliveries cannot be recorded: {full}" in out
            assert main(["alerts", "--retry", "--config", str(cfg)]) == 1
            out, err = capsys.readouterr()
            assert "Traceback" not in out + err
            assert err == f"monitor: the deliveries cannot be recorded: {full}" + err.split(full)[1]
            assert err.count("\n") == 1
            assert len(hook.posts()) == 1  # nothing was sent that could not be recorded

        monkeypatch.setattr(runner, "match_pending", real)
        d.free()
        hook.post_statuses = [200]
        con = sqlite3.connect(db)  # (with the page cap, the alert was tried again, and failed)
        con.execute("UPDATE deliveries SET next_attempt_at = created_at")
        con.commit()
        con.close()
        assert main(["fetch", "--config", str(cfg)]) == 0
        out = capsys.readouterr().out
        assert "50 new matches" in out, out  # the posts the full disk left unmatched
        assert db_rows(db, "PRAGMA integrity_check")[0][0] == "ok"
        assert db_rows(db, "SELECT count(*) FROM matches")[0][0] == 51
        assert db_rows(db, "SELECT count(*) FROM posts_fts_docsize")[0][0] == 52
        sent = db_rows(db, "SELECT status, count(*) FROM deliveries GROUP BY status")
        assert [tuple(r) for r in sent] == [("sent", 51)]
        one_id_per_delivery(hook)


@pytest.mark.slow
def test_a_failed_group_commit_ends_the_pass_with_each_source_failed_and_exit_1(tmp_path):
    feeds = [f"f{i}" for i in range(4)]
    with disk(tmp_path) as d, Origin() as origin, Origin() as hook:
        print(f"disk: {d.kind}")
        for f in feeds:
            origin.routes[f"/{f}.xml"] = Route(rss(*items(f, 3)))
        cfg = write_config(d.dir / "m.toml", origin, hook, feeds)
        db = d.dir / "monitor.db"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **d.env}

        def fetch() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "monitor", "fetch", "--config", str(cfg)],
                capture_output=True, text=True, env=env, timeout=60,  # it hung forever
            )  # fmt: skip

        assert fetch().returncode == 0
        stored = db_rows(db, "SELECT id, title, text FROM posts ORDER BY id")
        for f in feeds:  # each source's save is one writer of the pass's group commit
            origin.routes[f"/{f}.xml"] = Route(rss(*items(f, 3), *items(f, 150, start=3)))
        # Room for the WAL index and a failure's record, not for the posts: the group's
        # COMMIT fails, and so does each save alone.
        d.fill(db, leave=48 * 1024)
        done = fetch()
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        for f in feeds:
            assert (
                f"{f}  FAILED  could not store: cannot write to the archive {db}: the disk is full ("
                in ("\n".join(lines))
            ), done.stdout
        assert "4 sources, 4 failed, 0 new matches" in done.stdout
        assert db_rows(db, "SELECT id, title, text FROM posts ORDER BY id") == stored

        d.free()
        assert fetch().returncode == 0
        assert db_rows(db, "SELECT count(*) FROM posts")[0][0] == 4 * 153
        assert db_rows(db, "SELECT count(*) FROM matches")[0][0] == 4 * 153
        assert db_rows(db, "PRAGMA integrity_check")[0][0] == "ok"
        one_id_per_delivery(hook)


@pytest.mark.slow
def test_the_daemon_waits_out_a_full_disk_and_resumes_by_itself_when_space_returns(tmp_path):
    with disk(tmp_path) as d, Origin() as origin, Origin() as hook:
        print(f"disk: {d.kind}")
        origin.routes["/tass.xml"] = Route(rss(*items("tass", 3)))
        cfg = write_config(d.dir / "m.toml", origin, hook, ["tass"])
        cfg.write_text(cfg.read_text().replace('every = "1h"', 'every = "1s"\njitter = "0s"'))
        db = d.dir / "monitor.db"
        wal = Path(f"{db}-wal")
        log = tmp_path / "run.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), **d.env}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env,
        )  # fmt: skip
        try:
            assert wait_for(lambda: len(hook.posts()) == 3, 30), log.read_text()
            origin.routes["/tass.xml"] = Route(rss(*items("tass", 3), *items("tass", 150, 3)))
            d.fill(db)
            full_since, gets_before, wal_before = time.monotonic(), len(origin.gets()), _size(wal)
            # Fetches every second, were it not waiting: 5 s, then 10 s, after each failure.
            assert wait_for(lambda: "the disk is full" in log.read_text(), 10), log.read_text()
            time.sleep(max(0.0, 12 - (time.monotonic() - full_since)))
            fetched_while_full = len(origin.gets()) - gets_before
            wal_while_full = _size(wal)
            d.free()
            assert wait_for(lambda: len(hook.posts()) == 153, 60), log.read_text()[-3000:]
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text()
        print(
            f"{fetched_while_full} fetches in 12 s of full disk; WAL {wal_before} → {wal_while_full}"
        )
        assert "Traceback" not in text, text
        assert fetched_while_full <= 3, text  # 12 at every = "1s"
        assert wal_while_full <= wal_before + 64 * 1024
        assert "fetching and delivering wait 5s" in text and "wait 10s" in text, text
        assert "the archive can be written again: fetching and delivering resume" in text
        assert db_rows(db, "SELECT count(*) FROM posts")[0][0] == 153  # nothing lost or skipped
        assert db_rows(db, "SELECT count(*) FROM matches")[0][0] == 153
        assert db_rows(db, "PRAGMA integrity_check")[0][0] == "ok"
        one_id_per_delivery(hook)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_a_full_disk_that_sqlite_calls_an_io_error_is_named_a_full_disk(tmp_path, capsys):
    with disk(tmp_path) as d, Origin() as origin, Origin() as hook:
        if not d.tmpfs:
            pytest.skip("needs a real full disk (a tmpfs, as root): a page cap is SQLITE_FULL")
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER))
        cfg = write_config(d.dir / "m.toml", origin, hook, ["tass"])
        db = d.dir / "monitor.db"
        assert main(["fetch", "--config", str(cfg), "--no-alerts", "-q"]) == 0
        d.fill(db)  # not even room for the WAL index (-shm) that opening the archive makes
        for command in (["fetch"], ["search", "NATO"], ["alerts"]):
            assert main([*command, "--config", str(cfg)]) == 2
            err = capsys.readouterr().err
            assert err.startswith(
                f"monitor: cannot write to the archive {db}: the disk is full (0 bytes free; "
                "SQLite said: disk I/O error)"
            ), err
            assert err.count("\n") == 1
        d.free()
        assert main(["search", "NATO", "--config", str(cfg), "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 1  # nothing lost
