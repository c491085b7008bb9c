"""An operable daemon: Prometheus metrics, `monitor health`, live progress, the service files."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.cli import main
from tests.origin import Origin, Route
from tests.test_daemon import start, stop, wait_for
from tests.test_end_to_end import LAVROV, OTHER, rss, write_config

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
def test_daemon_serves_metrics_and_health_follows_it(tmp_path, capsys):
    port = _free_port()
    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(b"", status=500)
        hook.post_statuses = [500]  # the delivery stays pending
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"),
                           extra="")  # fmt: skip
        text = cfg.read_text().replace("[monitor]\n", f'[monitor]\nmetrics = "127.0.0.1:{port}"\n')
        cfg.write_text(text)

        assert main(["health", "--config", str(cfg)]) == 2  # no archive yet
        capsys.readouterr()
        log = tmp_path / "run.log"
        proc = start(cfg, log)
        try:
            assert wait_for(lambda: hook.posts(), 30), log.read_text()
            # Both sources fetched (the order of the two is the scheduler's).
            assert wait_for(lambda: _has(port, "monitor_fetch_duration_seconds_count", 2), 20)
            m = _scrape(port)
            assert m[("monitor_fetches_total", (("outcome", "ok"), ("source", "tass")))] == 1
            assert m[("monitor_fetches_total", (("outcome", "failed"), ("source", "broken")))] == 1
            assert m[("monitor_posts_total", (("kind", "new"), ("source", "tass")))] == 2
            assert m[("monitor_matches_total", (("alert", "nato-troops-ukraine"),))] == 1
            assert m[("monitor_fetch_duration_seconds_count", (("type", "feed"),))] == 2
            assert 0 <= m[("monitor_source_last_success_age_seconds", (("source", "tass"),))] < 60
            assert ("monitor_source_last_success_age_seconds", (("source", "broken"),)) not in m
            assert m[("monitor_deliveries", (("status", "pending"),))] == 1
            assert m[("monitor_outbox_backlog", ())] == 1
            assert m[("monitor_outbox_oldest_pending_age_seconds", ())] >= 0

            # Alive, but one source of two failing: at the default share (0.5), unhealthy.
            assert main(["health", "--config", str(cfg), "--json"]) == 1
            doc = json.loads(capsys.readouterr().out)
            assert doc["problems"] == ["1 of 2 sources failing (broken)"]
            assert doc["daemon"]["stopped_at"] is None
            assert main(["health", "--config", str(cfg), "--max-failing", "0.9"]) == 0
            assert capsys.readouterr().out.startswith("ok — daemon alive (last heartbeat ")
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in log.read_text()
    assert main(["health", "--config", str(cfg), "--max-failing", "1"]) == 1
    out = capsys.readouterr().out
    assert re.match(r"unhealthy: the daemon \S+ stopped at \S+Z\n$", out), out


def _has(port: int, name: str, at_least: float) -> bool:
    try:
        return any(key[0] == name and v >= at_least for key, v in _scrape(port).items())
    except OSError:
        return False


def _archive(tmp_path: Path, origin: Origin, capsys: pytest.CaptureFixture[str]) -> Path:
    origin.routes["/tass.xml"] = Route(rss(LAVROV))
    origin.routes["/broken.xml"] = Route(rss(OTHER))
    cfg = write_config(tmp_path / "m.toml", origin, hook=origin.url("/hook"))
    origin.post_statuses = [503]
    assert main(["fetch", "--config", str(cfg), "-q"]) == 0
    capsys.readouterr()
    return cfg


def test_health_without_a_heartbeat_or_with_an_old_backlog_is_unhealthy(tmp_path, capsys):
    with Origin() as origin:
        cfg = _archive(tmp_path, origin, capsys)
    assert main(["health", "--config", str(cfg)]) == 1
    assert capsys.readouterr().out == (
        "unhealthy: no daemon has run on this archive (`monitor run` starts one)\n"
    )
    db = sqlite3.connect(tmp_path / "monitor.db")
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 100))
    with db:  # a heartbeat 100 s ago, and a delivery pending for two hours
        db.execute(
            "INSERT INTO daemons (id, host, pid, roles, started_at, beat_at) "
            "VALUES ('h:1', 'h', 1, 'fetch,deliver,transcribe', ?, ?)", (old, old),
        )  # fmt: skip
        hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
        db.execute("UPDATE deliveries SET created_at = ?", (hours_ago,))
    db.close()
    assert main(["health", "--config", str(cfg), "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert problems == [
        f"no daemon heartbeat for 2m (the last from h:1, at {old})",
        "the outbox holds 1 pending, the oldest waiting for 2h",
    ]
    assert main(["health", "--config", str(cfg), "--max-silence", "5m",
                 "--max-backlog", "3h"]) == 0  # fmt: skip
    assert main(["health", "--config", str(cfg), "--max-silence", "5"]) == 2
    assert "--max-silence: a duration needs its unit" in capsys.readouterr().err


def test_metrics_setting_is_checked_and_a_taken_port_is_named(tmp_path, capsys):
    cfg = tmp_path / "m.toml"
    cfg.write_text('[monitor]\nmetrics = "9108"\n')
    assert main(["check", "--config", str(cfg)]) == 2
    assert "monitor.metrics: expected host:port such as 127.0.0.1:9108, got '9108'" in (
        capsys.readouterr().out
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nmetrics = "127.0.0.1:{port}"\n'
        )
        assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"monitor: monitor.metrics: cannot serve metrics at 127.0.0.1:{port}:" in err
    assert "Traceback" not in err


def _progress_config(tmp_path: Path, origin: Origin, n: int) -> Path:
    sources = ""
    for i in range(n):
        origin.routes[f"/f{i}.xml"] = Route(rss((str(i), f"Story {i}", "text")))
        sources += f'[sources.f{i}]\ntype = "feed"\nurl = "{origin.url(f"/f{i}.xml")}"\n'
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n{sources}')
    return cfg


def test_fetch_shows_progress_on_a_terminal_and_not_in_a_pipe(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with Origin() as origin:
        cfg = _progress_config(tmp_path, origin, 6)
        command = [sys.executable, "-m", "monitor", "fetch", "--config", str(cfg)]
        main_fd, child_fd = pty.openpty()
        proc = subprocess.Popen(command, stdin=child_fd, stdout=child_fd, stderr=child_fd,
                                env=env)  # fmt: skip
        os.close(child_fd)
        seen = b""
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # the terminal's other end closed: the process is done
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=60)
        os.close(main_fd)
        screen = seen.decode()
        assert "fetching: 6/6 sources, 0 failed, 6 new" in screen
        # The line is wiped before the summary is printed.
        assert "fetching: 6/6 sources, 0 failed, 6 new\r\x1b[Kf0  1 new, 0 updated" in screen
        piped = subprocess.run([*command, "--db", str(tmp_path / "p.db")], env=env,
                               capture_output=True, timeout=60)  # fmt: skip
    assert piped.returncode == 0 and b"fetching:" not in piped.stderr + piped.stdout


def test_the_systemd_unit_runs_the_daemon_restarts_it_and_is_hardened(tmp_path):
    unit = (ROOT / "config/outlet-monitor.service").read_text()
    keys = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#")
    assert keys["ExecStart"].split()[1:3] == ["run", "--config"]
    assert keys["ExecStart"].split()[0].endswith("/bin/monitor")
    assert keys["Restart"] == "on-failure" and keys["RestartPreventExitStatus"] == "2"
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                      "DynamicUser", "StateDirectory", "SystemCallFilter"):  # fmt: skip
        assert hardening in keys, hardening
    if shutil.which("systemd-analyze"):  # systemd's own parser, where the machine has it
        # As installed: the unit's monitor is this test run's.
        here = tmp_path / "outlet-monitor.service"
        here.write_text(unit.replace("/opt/outlet-monitor/.venv/bin/monitor",
                                     str(Path(sys.executable).parent / "monitor")))  # fmt: skip
        out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(here)],
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0 and not out.stderr, out.stderr


def test_the_dockerfile_builds_from_files_that_exist_and_runs_the_daemon():
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.strip()]
    cmd = [line for line in lines if line.startswith("CMD ")]
    assert cmd == ['CMD ["monitor", "run"]']
    assert any(line.startswith("HEALTHCHECK") and '"monitor", "health"' in line for line in lines)
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_every_daemon_job_that_writes_runs_on_the_event_loop():
    # APScheduler runs a plain function in a worker thread: a job that writes to the archive
    # there opens a transaction on the loop's connection while the loop has one open
    # ("cannot start a transaction within a transaction"), now and then.
    import inspect

    from monitor.schedule import Daemon

    for job in ("_beat", "_run_source", "_deliver", "_check_sources"):
        assert inspect.iscoroutinefunction(getattr(Daemon, job)), job


def test_workers_lists_live_daemons_and_with_all_the_stopped_and_silent(tmp_path, capsys):
    from monitor import health
    from monitor.archive import open_archive
    from monitor.archive.sqlite import now_iso
    from monitor.cli import main

    db = tmp_path / "monitor.db"
    store = open_archive(str(db))
    with store.transaction() as tx:
        health.beat(tx, "a:1", now_iso())
        health.beat(tx, "b:2", now_iso())
        health.stopped(tx, "b:2")
        health.beat(tx, "c:3", now_iso())
        tx.execute("UPDATE daemons SET beat_at = '2020-01-01T00:00:00Z' WHERE id = 'c:3'")
    store.close()
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[monitor]\ndatabase = "{db}"\n')
    assert main(["workers", "--config", str(cfg), "--json"]) == 0
    assert [w["id"] for w in json.loads(capsys.readouterr().out)] == ["a:1"]
    assert main(["workers", "--all", "--config", str(cfg), "--json"]) == 0
    states = {w["id"]: w["state"] for w in json.loads(capsys.readouterr().out)}
    assert states == {"a:1": "live", "b:2": "stopped", "c:3": "silent"}
    assert main(["workers", "--all", "--config", str(cfg)]) == 0
    assert "silent   c:3  roles fetch,deliver,transcribe" in capsys.readouterr().out
