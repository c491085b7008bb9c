"""The archive on PostgreSQL: one setting selects it, its schema is versioned, and every way of
not reaching it is one line naming the setting, password masked, exit 2."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from monitor.archive import open_archive
from monitor.archive.postgres import SCHEMA_VERSION, masked, translate
from monitor.archive.sqlite import now_iso
from monitor.cli import main
from monitor.errors import ArchiveError
from tests.pgserver import PASSWORD, PgServer, free_port

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_the_password_is_masked_in_messages() -> None:
    assert masked("postgresql://monitor:pw@db:5432/monitor") == (
        "postgresql://monitor:***@db:5432/monitor"
    )
    assert masked("postgresql://db/monitor") == "postgresql://db/monitor"


def test_sqlite_sql_is_written_for_postgresql() -> None:
    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE '%x'") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE '%%x'"
    )
    assert translate("INSERT OR IGNORE INTO m (a) VALUES (?)") == (
        "INSERT INTO m (a) VALUES (%s) ON CONFLICT DO NOTHING"
    )
    assert translate("UPDATE s SET a = 1 WHERE a IS NOT excluded.a AND b IS NOT NULL") == (
        "UPDATE s SET a = 1 WHERE a IS DISTINCT FROM excluded.a AND b IS NOT NULL"
    )


def _unreachable(server: PgServer) -> str:
    return f"postgresql://monitor:{PASSWORD}@127.0.0.1:{free_port()}/monitor"


@pytest.mark.parametrize(
    ("make_url", "reason"),
    [
        (lambda s: s.url("monitor", password="wrong-pw"), "password authentication failed"),
        (lambda s: s.url("no_such_db"), 'database "no_such_db" does not exist'),
        (_unreachable, "Connection refused"),
        (lambda s: f"postgresql://monitor:{PASSWORD}@127.0.0.1:notaport/x", "invalid"),
    ],
    ids=["refused password", "missing database", "unreachable server", "wrong URL"],
)
@pytest.mark.parametrize(
    "command", [["search", "NATO"], ["fetch", "nato-news"], ["sources"], ["alerts"], ["run"]]
)
def test_a_server_out_of_reach_is_one_line_naming_the_setting(
    pg_server: PgServer, make_url, reason: str, command: list[str], capsys
) -> None:
    url = make_url(pg_server)
    code = main([*command, "--config", str(ROOT / "config/demo.toml"), "--db", url])
    err = one_line_error(capsys)
    assert code == 2
    assert err.startswith("monitor: [monitor] database = postgresql://monitor:***@"), err
    assert reason in err
    assert "wrong-pw" not in err and PASSWORD not in err


def test_an_unknown_url_scheme_is_a_configuration_error(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('[monitor]\ndatabase = "mysql://db/monitor"\n')
    assert main(["check", "--config", str(cfg)]) == 2
    assert "monitor.database: mysql:// is not an archive" in capsys.readouterr().out


def test_the_schema_is_made_once_and_versioned(pg_url: str) -> None:
    first = open_archive(pg_url)
    second = open_archive(pg_url)  # a second process on the same database: nothing to do
    (version,) = second.db.execute("SELECT version FROM monitor_schema").fetchone()
    assert version == SCHEMA_VERSION
    assert tuple(second.db.execute("SELECT count(*) FROM monitor_schema").fetchone()) == (1,)
    first.close()
    second.close()


def test_a_version_1_archive_gains_fetched_by(pg_url: str) -> None:
    open_archive(pg_url).close()
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("ALTER TABLE sources DROP COLUMN fetched_by")
        con.execute("UPDATE monitor_schema SET version = 1")
    store = open_archive(pg_url)
    store.sync_sources([("tass", "feed", "https://tass.com/rss")])
    store.fetched_by = "desk-1:4242"
    with store.transaction() as db:
        store.finish_fetch_failed(db, "tass", now_iso(), "HTTP 500", 500, None)
    assert [tuple(r) for r in store.db.execute("SELECT fetched_by FROM sources")] == [
        ("desk-1:4242",)
    ]
    assert store.db.execute("SELECT version FROM monitor_schema").fetchone()[0] == SCHEMA_VERSION
    store.close()


def test_an_archive_newer_than_the_code_is_refused(pg_url: str, capsys) -> None:
    open_archive(pg_url).close()
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("UPDATE monitor_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(ArchiveError, match=r"schema version \d+, newer than this monitor's"):
        open_archive(pg_url)
    cfg = str(ROOT / "config/demo.toml")
    assert main(["search", "NATO", "--config", cfg, "--db", pg_url]) == 2
    assert "newer than this monitor's" in one_line_error(capsys)
    assert main(["check", "--config", cfg, "--db", pg_url]) == 2
    assert "made by a newer monitor" in capsys.readouterr().out


def test_reading_commands_do_not_make_an_archive_on_an_empty_database(pg_url, capsys) -> None:
    cfg = str(ROOT / "config/demo.toml")
    assert main(["search", "NATO", "--config", cfg, "--db", pg_url]) == 2
    assert "no archive at [monitor] database = postgresql://monitor:***@" in one_line_error(capsys)
    import psycopg

    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT to_regclass('posts')").fetchone() == (None,)


def test_the_offline_demo_runs_on_postgresql(tmp_path: Path, pg_url: str, capsys) -> None:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = str(tmp_path / "config/demo.toml")
    replay = str(ROOT / "fixtures/demo")
    assert main(["fetch", "--replay", replay, "--config", cfg, "--db", pg_url, "--json"]) == 0
    fetched = json.loads(capsys.readouterr().out)
    assert sum(s["new"] for s in fetched["sources"]) >= 10
    matched = {m["post"] for s in fetched["sources"] for m in s["matches"]}
    assert matched

    # The same pass on SQLite finds the same posts and the same matches.
    db = str(tmp_path / "demo.db")
    assert main(["fetch", "--replay", replay, "--config", cfg, "--db", db, "--json"]) == 0
    on_sqlite = json.loads(capsys.readouterr().out)
    assert {m["post"] for s in on_sqlite["sources"] for m in s["matches"]} == matched
    # Snippets of matches not sent are made for the output, from each archive alike.
    snippets = [
        {(m["alert"], m["post"]): m["snippet"] for s in doc["sources"] for m in s["matches"]}
        for doc in (fetched, on_sqlite)
    ]
    assert snippets[0] == snippets[1] and all(snippets[0].values())
    assert [s["new"] for s in on_sqlite["sources"]] == [s["new"] for s in fetched["sources"]]

    found = 0
    for query in ["NATO", "Lavrov OR Putin", '"NATO troops"', "NEAR(troops Ukraine, 3)",
                  "title:Ukraine -Lavrov", "deploy*", "élysée"]:  # fmt: skip
        got = []
        for where in (pg_url, db):
            assert main(["search", query, "--config", cfg, "--db", where, "--json",
                         "--limit", "500"]) == 0  # fmt: skip
            got.append(sorted(h["id"] for h in json.loads(capsys.readouterr().out)))
        assert got[0] == got[1], query
        found += bool(got[0])
    assert found >= 5
    for options in (["--source", "nato-news"], ["--since", "2024-03-01"]):
        got = []
        for where in (pg_url, db):
            assert main(["search", "NATO", *options, "--config", cfg, "--db", where,
                         "--json"]) == 0  # fmt: skip
            got.append(sorted(h["id"] for h in json.loads(capsys.readouterr().out)))
        assert got[0] == got[1] and got[0], options
    # Ranked alike (title first), though not identically: --limit cuts the same count.
    assert main(["search", "NATO", "--limit", "2", "--config", cfg, "--db", pg_url, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    # The count line, found with the hits on PostgreSQL, says what it says on SQLite.
    lines = []
    for where in (pg_url, db):
        assert main(["search", "NATO", "--limit", "2", "--config", cfg, "--db", where]) == 0
        lines.append(capsys.readouterr().out.splitlines()[-1])
    assert lines[0] == lines[1] and lines[0].startswith("2 of ")

    assert main(["sources", "--config", cfg, "--db", pg_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert all(s["last_fetched_at"] for s in listed if s["id"] != "elysee-disabled")
    alerts = []
    for where in (pg_url, db):
        assert main(["alerts", "--config", cfg, "--db", where, "--json"]) == 0
        alerts.append(sorted((d["alert_id"], d["post_id"], d["notifier"], d["status"])
                             for d in json.loads(capsys.readouterr().out)))  # fmt: skip
    assert alerts[0] == alerts[1]
    assert main(["check", "--config", cfg, "--db", pg_url]) == 0
    out = capsys.readouterr().out
    assert "PostgreSQL, schema" in out and PASSWORD not in out


def _on_postgresql(cfg: Path, url: str) -> Path:
    """The configuration with its archive on PostgreSQL, the password from the environment."""
    text = cfg.read_text()
    database = next(line for line in text.splitlines() if line.startswith("database = "))
    secret_url = url.replace(PASSWORD, "${PGPASSWORD}")
    cfg.write_text(text.replace(database, f'database = "{secret_url}"'))
    return cfg


def _rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as con:
        try:
            return con.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:
            return []  # not made yet: the daemon is starting


@pytest.mark.slow
def test_monitor_run_on_postgresql_alerts_and_stops_cleanly(tmp_path: Path, pg_url: str) -> None:
    import os
    import subprocess
    import sys

    from tests.origin import Origin, Route
    from tests.test_daemon import stop, wait_for
    from tests.test_end_to_end import LAVROV, OTHER, rss, write_config

    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(b"", status=500)
        cfg = _on_postgresql(write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook")),
                             pg_url)  # fmt: skip
        log = tmp_path / "run.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PGPASSWORD": PASSWORD}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            assert wait_for(lambda: hook.posts(), 30), log.read_text()
            assert wait_for(
                lambda: _rows(pg_url, "SELECT status FROM deliveries") == [("sent",)], 10
            )
            failed = "SELECT failures FROM sources WHERE id = 'broken'"
            assert wait_for(lambda: _rows(pg_url, failed) == [(1,)], 10)  # its failure logged
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        assert "Traceback" not in text and PASSWORD not in text
        assert "database postgresql://monitor:***@" in text
        assert len(hook.posts()) == 1
        webhook_id = hook.posts()[0].headers["webhook-id"]
        assert _rows(pg_url, "SELECT id FROM deliveries") == [(webhook_id,)]
        assert not (tmp_path / "monitor.db").exists()  # nothing went to a SQLite file
        beats = _rows(pg_url, "SELECT roles, stopped_at IS NOT NULL FROM daemons")
        assert beats == [("fetch,deliver,transcribe", True)]  # its heartbeat, and its stop
    assert _rows(pg_url, "SELECT count(*) FROM posts") == [(2,)]


def test_record_and_replay_on_postgresql(tmp_path: Path, pg_url: str, capsys, monkeypatch):
    from tests.origin import Origin, Route
    from tests.test_end_to_end import LAVROV, OTHER, rss, write_config

    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        cfg = _on_postgresql(write_config(tmp_path / "m.toml", origin), pg_url)
        rec = tmp_path / "rec"
        assert main(["record", "tass", str(rec), "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["fetch", "tass", "--replay", str(rec), "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"][0]["new"] == 2 and out["sources"][0]["matches"]
    assert main(["search", "Lavrov", "--config", str(cfg), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["sources", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "tass" in out and PASSWORD not in out


def test_a_connection_the_server_drops_is_made_again_and_nothing_is_lost(pg_url: str) -> None:
    import psycopg

    from monitor.models import Post

    store = open_archive(pg_url)
    store.sync_sources([("src", "feed", None)])

    def drop_it() -> None:
        pid = store.db.con.info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    try:
        drop_it()
        assert [r["id"] for r in store.source_rows()] == ["src"]  # a read: made again
        with pytest.raises(store.errors), store.transaction() as db:
            store.save_posts(db, "src", [Post("lost", None, title="in a dropped transaction")])
            drop_it()
            store.index_pending(db)
        with store.transaction() as db:  # the next write works, on a new connection
            store.save_posts(db, "src", [Post("kept", None, title="saved after")])
            store.index_pending(db)
        titles = [r[0] for r in store.db.execute("SELECT title FROM posts")]
        assert titles == ["saved after"]
    finally:
        store.close()


@pytest.mark.slow
def test_two_daemons_on_one_postgresql_archive_share_the_sources_and_send_each_alert_once(
    tmp_path: Path, pg_url: str
) -> None:
    import os
    import socket
    import subprocess
    import sys

    from tests.origin import Origin, Route
    from tests.test_daemon import stop, wait_for
    from tests.test_end_to_end import LAVROV, OTHER, rss, write_config

    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(rss(OTHER))
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"))
        # The workers of compose.yaml, as it starts them: the password only in PGPASSWORD,
        # which libpq reads, and the server at this test's address rather than `db`.
        workers = [v for k, v in _compose()["services"].items() if k.startswith("worker")]
        assert len(workers) == 2 and workers[0]["command"] == workers[1]["command"]
        command, url = workers[0]["command"][:-1], workers[0]["command"][-1]
        assert command == ["monitor", "run", "--db"] and url.startswith("postgresql://monitor@db")
        here = pg_url.replace(f":{PASSWORD}@", "@")
        assert PASSWORD not in here
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PGPASSWORD": PASSWORD}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", *command, here, "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"run{i}.log").open("w"),
                env=env,
                cwd=tmp_path,
            )  # fmt: skip
            for i in range(2)
        ]
        cfg = _on_postgresql(cfg, pg_url)  # for the commands below
        try:
            # The sources are shared (`every = "1h"`): each is fetched once, by one of them.
            fetched = "SELECT source_id, count(*) FROM fetches GROUP BY source_id ORDER BY 1"
            assert wait_for(lambda: _rows(pg_url, fetched) == [("broken", 1), ("tass", 1)], 30)
            assert wait_for(
                lambda: _rows(pg_url, "SELECT status FROM deliveries") == [("sent",)], 10
            )
            time.sleep(2)  # a second fetch or send, if there were one, would have come by now
            assert _rows(pg_url, fetched) == [("broken", 1), ("tass", 1)]
            got = subprocess.run(
                [sys.executable, "-m", "monitor", "sources", "--config", str(cfg), "--json"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            by = {s["fetched_by"] for s in json.loads(got.stdout)}
            assert by <= {f"{socket.gethostname()}:{p.pid}" for p in procs}, by
            got = subprocess.run(
                [sys.executable, "-m", "monitor", "workers", "--config", str(cfg), "--json"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            live = json.loads(got.stdout)
            assert sorted(w["pid"] for w in live) == sorted(p.pid for p in procs)
            assert {w["state"] for w in live} == {"live"}
            assert all(stop(p) == 0 for p in procs)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        assert len(hook.posts()) == 1
        assert _rows(pg_url, "SELECT count(*) FROM posts") == [(3,)]  # saved once each
        assert _rows(pg_url, "SELECT count(*) FROM matches") == [(1,)]
        assert _rows(pg_url, "SELECT count(*) FROM daemons") == [(2,)]
        for i in range(2):
            assert "Traceback" not in (tmp_path / f"run{i}.log").read_text()


def _compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_starts_postgresql_and_two_workers_from_the_image() -> None:
    spec = _compose()
    db = spec["services"]["db"]
    assert db["image"].startswith("postgres:") and "healthcheck" in db
    assert db["environment"]["POSTGRES_USER"] == "monitor"
    for name in ("worker-1", "worker-2"):
        worker = spec["services"][name]
        assert worker["build"] == "." and (ROOT / "Dockerfile").exists()
        assert worker["depends_on"]["db"]["condition"] == "service_healthy"
        assert "PGPASSWORD" in worker["environment"]
    # The image has what a worker on PostgreSQL needs: psycopg and Procrastinate.
    assert "pip install '.[postgresql]'" in (ROOT / "Dockerfile").read_text()


def test_posts_committed_while_another_process_matches_are_never_skipped(pg_url: str) -> None:
    """The watermark trap: revs that commit out of order. Saves run at once (revs from a
    sequence), and commit in another order than their revs; no mark follows them: each post
    waits in `unmatched` until one transaction, holding the alerts' turn, matches it."""
    import threading

    from monitor.config import parse_config
    from monitor.match import match_pending
    from monitor.models import Post

    config = parse_config(
        {"monitor": {"database": pg_url},
         "sources": {f"s{i}": {"type": "feed", "url": f"https://s{i}.example/rss"}
                     for i in range(4)},
         "alerts": {"all": {"query": "nato", "notify": []}}},
        env={},
    )  # fmt: skip
    stores = [open_archive(pg_url) for _ in range(4)]
    stores[0].sync_sources((f"s{i}", "feed", None) for i in range(4))
    errors: list[BaseException] = []

    commits: list[int] = []  # the first rev of each save, in the order they committed
    guard = threading.Lock()

    def worker(i: int) -> None:
        store = stores[i]
        try:
            for round_ in range(15):
                with store.transaction(ordered=False) as db:  # as the pipeline saves
                    posts = [Post(f"{round_}-{k}", None, title=f"NATO {i} {round_} {k}")
                             for k in range(5)]  # fmt: skip
                    saved = store.save_posts(db, f"s{i}", posts)
                    # Held open a while, so that later revs commit first.
                    time.sleep(0.002 * ((i + round_) % 4))
                    if round_ % 3 == i % 3:
                        match_pending(db, store, config)  # some saves match at once, some later
                with guard:
                    commits.append(saved.rev_lo)
                time.sleep(0.001 * i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with stores[0].transaction() as db:
        match_pending(db, stores[0], config)  # the rest
    db = stores[0].db
    (posts,) = db.execute("SELECT count(*) FROM posts").fetchone()
    assert posts == 4 * 15 * 5
    matched = db.execute("SELECT count(*), count(DISTINCT post_id) FROM matches").fetchone()
    assert tuple(matched) == (posts, posts)  # every post matched, each once
    assert tuple(db.execute("SELECT count(*) FROM posts_fts").fetchone()) == (posts,)
    assert db.execute("SELECT count(*) FROM unmatched").fetchone()[0] == 0
    # The trap was there: a save committed after one with higher revs.
    assert any(a > b for a, b in zip(commits, commits[1:], strict=False)), commits
    for store in stores:
        store.close()


@pytest.mark.slow
def test_a_fetcher_and_a_deliverer_share_the_work_by_role(tmp_path: Path, pg_url: str) -> None:
    import os
    import subprocess
    import sys

    from tests.origin import Origin, Route
    from tests.test_daemon import stop, wait_for
    from tests.test_end_to_end import LAVROV, OTHER, rss, write_config

    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(rss(OTHER))
        cfg = _on_postgresql(write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook")),
                             pg_url)  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PGPASSWORD": PASSWORD}

        def start(role: str) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--only", role, "--config", str(cfg)],
                stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{role}.log").open("w"),
                env=env, cwd=tmp_path,
            )  # fmt: skip

        fetcher = start("fetch")
        try:
            pending = "SELECT status FROM deliveries"
            assert wait_for(lambda: _rows(pg_url, pending) == [("pending",)], 30)
            time.sleep(2)  # a fetcher never sends
            assert hook.posts() == [] and _rows(pg_url, pending) == [("pending",)]
            deliverer = start("deliver")
            try:
                assert wait_for(lambda: _rows(pg_url, pending) == [("sent",)], 30)
                roles = "SELECT roles FROM daemons ORDER BY roles"
                assert wait_for(lambda: _rows(pg_url, roles) == [("deliver",), ("fetch",)], 10)
                assert stop(deliverer) == 0
            finally:
                if deliverer.poll() is None:
                    deliverer.kill()
            assert stop(fetcher) == 0
        finally:
            if fetcher.poll() is None:
                fetcher.kill()
        assert len(hook.posts()) == 1
        assert len(origin.gets("/tass.xml")) == 1  # the deliverer fetched nothing


def test_an_unknown_role_is_a_usage_error(capsys) -> None:
    cfg = str(ROOT / "config/demo.toml")
    assert main(["run", "--only", "fetch,transcode", "--config", cfg]) == 2
    assert "--only: transcode is not a role" in capsys.readouterr().err


def test_metrics_read_a_postgresql_archive(pg_url: str) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from monitor.archive import open_archive
    from monitor.archive.sqlite import now_iso
    from monitor.metrics import _ArchiveCollector

    store = open_archive(pg_url)
    store.sync_sources([("tass", "feed", "https://tass.com/rss"), ("down", "feed", "x")])
    with store.transaction() as db:
        store.finish_fetch_failed(db, "down", now_iso(), "HTTP 500", 500, None)
    store.close()
    registry = CollectorRegistry()
    registry.register(_ArchiveCollector(pg_url))
    text = generate_latest(registry).decode()
    assert 'monitor_source_failures{source="down"} 1.0' in text, text
    assert 'monitor_deliveries{status="pending"} 0.0' in text
    assert "monitor_outbox_backlog 0.0" in text


def one_alert_config(database: str) -> object:
    """A configuration of one source, `src`, and one alert on NATO that notifies no one."""
    from monitor.config import parse_config

    return parse_config(
        {"monitor": {"database": database},
         "sources": {"src": {"type": "feed", "url": "https://s.example/rss"}},
         "alerts": {"nato": {"query": "NATO", "notify": []}}},
        env={},
    )  # fmt: skip


def _saved(url: str, posts: list) -> object:
    """An archive on `url` holding these posts, saved (and so revised) in this order."""
    store = open_archive(url)
    store.sync_sources([("src", "feed", None)])
    for post in posts:  # one transaction each: the revs are the posts' order
        with store.transaction() as db:
            store.save_posts(db, "src", [post])
            store.index_pending(db)
    return store


def test_past_the_bound_the_newest_matches_are_ranked_and_all_counted(pg_url, monkeypatch):
    from monitor.archive import postgres
    from monitor.archive.search import count, search
    from monitor.models import Post

    monkeypatch.setattr(postgres, "RANKED", 3)
    # The oldest match is the best one (its title has the word), the four after it are not.
    posts = [Post("0", None, "NATO summit", "opens")]
    posts += [Post(str(k), None, f"Talks {k}", "NATO said") for k in range(1, 5)]
    store = _saved(pg_url, posts)
    try:
        ids = [h.post["external_id"] for h in search(store, "NATO", limit=2)]
        assert ids[0] != "0" and set(ids) <= {"2", "3", "4"}
        assert {h.post["external_id"] for h in search(store, "NATO", limit=3)} == {"2", "3", "4"}
        assert count(store, "NATO") == 5  # the count is of every match
        # A --limit past the bound ranks that many: the best comes first again.
        assert [h.post["external_id"] for h in search(store, "NATO", limit=10)][0] == "0"
        # A filter chooses among the matches before the bound: the newest three of the source.
        since = "1970-01-01T00:00:00Z"
        filtered = search(store, "NATO", source="src", since=since, limit=2)
        assert {h.post["external_id"] for h in filtered} <= {"2", "3", "4"}
        assert count(store, "NATO", source="src", since=since) == 5
    finally:
        store.close()


def test_past_the_bound_unsettled_candidates_are_checked_in_batches(pg_url, monkeypatch):
    from monitor.archive import pgtext, postgres
    from monitor.archive.search import count, search
    from monitor.models import Post
    from monitor.query import parse_query

    monkeypatch.setattr(postgres, "RANKED", 2)
    # A NEAR too wide to write as phrase operators is checked on the text: the four newest
    # candidates have the words apart, so the search reads further back, batch after batch,
    # for the two newest that match.
    near = f"NEAR(macron troops, {pgtext.NEAR_WRITTEN + 1})"
    apart = " ".join(["filler"] * (pgtext.NEAR_WRITTEN + 10))
    posts = [Post("best", None, "Macron troops", "Macron troops")]
    posts += [Post(f"near-{k}", None, f"Note {k}", "Macron troops") for k in range(2)]
    posts += [Post(f"apart-{k}", None, f"Memo {k}", f"Macron {apart} troops") for k in range(4)]
    store = _saved(pg_url, posts)
    try:
        assert pgtext.tsquery(parse_query(near)).sure is None
        found = {h.post["external_id"] for h in search(store, near, limit=2)}
        assert found == {"near-0", "near-1"}
        assert count(store, near) == 3
        assert search(store, near, limit=3)[0].post["external_id"] == "best"
    finally:
        store.close()


def test_a_search_with_its_count_finds_the_newest_in_the_counting_pass(pg_url, monkeypatch):
    # `monitor search` asks for the hits and their count at once: on PostgreSQL one pass over
    # every match gives the count and the newest RANKED, which are then ranked as a search
    # ranks them; NEAR's candidates the server cannot settle are checked on the text.
    from monitor.archive import pgtext, postgres
    from monitor.archive.search import count, search, search_counted
    from monitor.models import Post

    monkeypatch.setattr(postgres, "RANKED", 3)
    wide = pgtext.NEAR_WRITTEN + 1
    apart = " ".join(["filler"] * (wide + 5))
    posts = [Post("0", None, "NATO summit", "Macron troops")]  # the best, and the oldest
    posts += [Post(str(k), None, f"Talks {k}", "NATO said Macron troops") for k in range(1, 5)]
    posts += [Post(f"apart-{k}", None, "Memo", f"NATO Macron {apart} troops") for k in range(2)]
    store = _saved(pg_url, posts)
    try:
        for query in ("NATO", "NEAR(macron troops, 3)", f"NEAR(macron troops, {wide})", "nothing"):
            for limit in (2, 3, 10):
                hits, total = search_counted(store, query, limit=limit)
                assert total == count(store, query), (query, limit)
                want = [h.post["external_id"] for h in search(store, query, limit=limit)]
                assert [h.post["external_id"] for h in hits] == want, (query, limit)
        hits, total = search_counted(store, "NATO", limit=2)
        assert total == 7 and {h.post["external_id"] for h in hits} <= {"4", "apart-0", "apart-1"}
        hits, total = search_counted(store, f"NEAR(macron troops, {wide})", limit=2)
        assert total == 5 and {h.post["external_id"] for h in hits} <= {"2", "3", "4"}
    finally:
        store.close()


def test_the_newest_matches_are_found_window_by_window_of_rev_buckets(pg_url, monkeypatch):
    from monitor.archive import pgtext, postgres
    from monitor.archive.search import count, search
    from monitor.models import Post

    monkeypatch.setattr(pgtext, "BUCKET", 2)  # revs 1: bucket 0; 2-3: 1; 4-5: 2; ...
    monkeypatch.setattr(postgres, "RANKED", 3)
    words = ["rare NATO", "x", "NATO", "x", "x", "NATO", "x", "x", "x", "x", "NATO", "NATO"]
    store = _saved(pg_url, [Post(str(k), None, f"Post {k}", w) for k, w in enumerate(words)])
    try:
        (doc,) = store.db.execute("SELECT doc::text FROM posts_fts WHERE rev = 12").fetchone()
        assert "'_r6'" in doc
        # The newest three matches, from buckets 6 and 5 then back through the empty ones.
        assert {h.post["external_id"] for h in search(store, "NATO", limit=3)} == {"5", "10", "11"}
        # A match only in the oldest bucket is found, and counted, all the same.
        assert [h.post["external_id"] for h in search(store, "rare")] == ["0"]
        assert count(store, "NATO") == 5
        # A --limit past the bound: every match, each once.
        assert sorted(h.post["external_id"] for h in search(store, "NATO", limit=50)) == [
            "0", "10", "11", "2", "5"
        ]  # fmt: skip
    finally:
        store.close()


def test_an_archive_of_schema_1_gets_its_rev_buckets_when_opened(pg_url: str) -> None:
    import psycopg

    from monitor.archive.search import search
    from monitor.models import Post

    store = _saved(pg_url, [Post("a", None, "NATO summit", "opens")])
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as con:  # as the first monitor left it
        con.execute("UPDATE posts_fts SET doc = ts_delete(doc, '_r0')")
        con.execute("UPDATE monitor_schema SET version = 1")
    store = open_archive(pg_url)
    try:
        (doc,) = store.db.execute("SELECT doc::text FROM posts_fts").fetchone()
        assert "'_r0'" in doc
        assert [h.post["external_id"] for h in search(store, "NATO")] == ["a"]
        assert (
            store.db.execute("SELECT version FROM monitor_schema").fetchone()[0] == SCHEMA_VERSION
        )
    finally:
        store.close()


def test_an_archive_of_schema_4_numbers_on_and_matches_the_posts_above_its_mark(
    pg_url: str,
) -> None:
    """Schema 4 held a search mark (posts above it saved, not yet indexed or matched); 5 lists
    those in `unmatched` and takes revs from a sequence, started above the stored ones."""
    import psycopg

    from monitor.match import match_pending
    from monitor.models import Post

    store = _saved(pg_url, [Post("a", None, "NATO summit", "opens")])
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as con:  # as schema 4 left a pass cut short
        con.execute("UPDATE search_state SET indexed_rev = 0")
        con.execute("DELETE FROM posts_fts")
        con.execute("DROP TABLE unmatched")
        con.execute("DROP SEQUENCE posts_rev")
        con.execute("UPDATE monitor_schema SET version = 4")
    config = one_alert_config(pg_url)
    store = open_archive(pg_url)
    try:
        (old_rev,) = store.db.execute("SELECT rev FROM posts").fetchone()
        assert [r[0] for r in store.db.execute("SELECT rev FROM unmatched")] == [old_rev]
        with store.transaction() as db:
            store.save_posts(db, "src", [Post("b", None, "NATO troops", "arrive")])
            match_pending(db, store, config)
        revs = sorted(r[0] for r in store.db.execute("SELECT rev FROM posts"))
        assert revs[0] == old_rev and revs[1] > old_rev  # numbered on, not over it
        matched = sorted(r[0] for r in store.db.execute("SELECT post_id FROM matches"))
        assert len(matched) == 2  # the post left above the mark, and the new one
        assert store.db.execute("SELECT count(*) FROM posts_fts").fetchone()[0] == 2
        assert store.db.execute("SELECT count(*) FROM unmatched").fetchone()[0] == 0
        assert (
            store.db.execute("SELECT version FROM monitor_schema").fetchone()[0] == SCHEMA_VERSION
        )
    finally:
        store.close()


def test_an_archive_of_schema_5_keeps_its_snippets_and_matches_keep_their_query(
    pg_url: str,
) -> None:
    """Schema 6 lets a snippet wait for a reader unless the match is sent: the match row keeps
    the alert's query, which the snippet is made of when it is read."""
    import psycopg

    from monitor.match import match_pending, stored_snippets
    from monitor.models import Match, Post

    store = _saved(pg_url, [Post("a", None, "NATO summit", "opens")])
    (old,) = store.db.execute("SELECT id FROM posts").fetchone()
    with store.transaction() as db:
        store.add_match(db, "old", old, "[NATO] summit", None, [], {})
    store.close()
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute("ALTER TABLE matches DROP COLUMN query")
        con.execute("UPDATE monitor_schema SET version = 5")
    store = open_archive(pg_url)
    try:
        with store.transaction() as db:
            store.save_posts(db, "src", [Post("b", None, "NATO troops", "arrive")])
            found = match_pending(db, store, one_alert_config(pg_url))
        rows = {
            r[0]: (r[1], r[2])
            for r in store.db.execute("SELECT alert_id, snippet, query FROM matches")
        }
        (new,) = [m.post_id for ms in found.matches.values() for m in ms if m.post_id != old]
        assert rows == {"old": ("[NATO] summit", None), "nato": (None, "NATO")}
        assert stored_snippets(store.db, [Match("old", old, None), Match("nato", new, None)]) == {
            ("old", old): "[NATO] summit",
            ("nato", new): "[NATO] troops",
        }
        assert (
            store.db.execute("SELECT version FROM monitor_schema").fetchone()[0] == SCHEMA_VERSION
        )
    finally:
        store.close()


def test_each_statement_is_planned_for_the_archive_as_it_is_and_the_pass_index_empties(
    pg_url: str,
) -> None:
    """A generic plan made while posts was empty would read the whole table for a post's row
    ever after; and the pass index is emptied by a truncation at the commit, not a DELETE
    (whose dead rows in a temporary table, never vacuumed, every later scan reads)."""
    from monitor.models import Post

    store = _saved(pg_url, [Post("a", None, "NATO summit", "opens")])
    try:
        assert store.db.execute("SHOW plan_cache_mode").fetchone()[0] == "force_custom_plan"
        with store.transaction() as db:
            store.save_posts(db, "src", [Post("b", None, "NATO troops")])
            assert store.index_pending(db) == ("pass_fts", 0)
            assert db.execute("SELECT count(*) FROM pass_fts").fetchone()[0] == 1
        assert store.db.execute("SELECT count(*) FROM pass_fts").fetchone()[0] == 0
    finally:
        store.close()


def test_an_insert_of_many_rows_is_one_statement_of_many_values_and_keeps_every_row(
    pg_url: str,
) -> None:
    from monitor.archive import postgres

    store = open_archive(pg_url)
    try:
        with store.transaction() as db:
            rows = [(f"s{i}", "feed", None if i % 2 else f"https://e.org/{i}") for i in range(50)]
            cur = db.executemany("INSERT INTO sources (id, type, url) VALUES (?, ?, ?)", rows)
            assert cur.rowcount == 50
            # INSERT OR IGNORE keeps its meaning: the rows there already, and twins, left out.
            db.executemany(
                "INSERT OR IGNORE INTO sources (id, type, url) VALUES (?, 'feed', ?)",
                [("s1", "https://changed"), ("new", None), ("new", "https://twin")],
            )
        got = {r[0]: r[1] for r in store.db.execute("SELECT id, url FROM sources")}
        assert len(got) == 51 and got["s1"] is None and got["s4"] == "https://e.org/4"
        assert got["new"] is None
        # Past the parameters a statement may carry, in several statements.
        many = [(f"m{i}", "feed", None) for i in range(postgres._MAX_PARAMS // 3 + 5)]
        with store.transaction() as db:
            db.executemany("INSERT INTO sources (id, type, url) VALUES (?, ?, ?)", many)
        (n,) = store.db.execute("SELECT count(*) FROM sources WHERE id LIKE 'm%'").fetchone()
        assert n == len(many)
    finally:
        store.close()
