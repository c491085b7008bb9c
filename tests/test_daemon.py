"""`monitor run` as a real process: alerts arrive, SIGTERM stops it cleanly, a restart resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.origin import Origin, Route
from tests.test_end_to_end import LAVROV, OTHER, db_rows, rss, write_config

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def start(cfg: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env, cwd=cfg.parent,
    )  # fmt: skip


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_daemon_alerts_stops_on_sigterm_and_does_not_refetch_at_once_after_restart(tmp_path):
    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"')
        origin.routes["/broken.xml"] = Route(b"", status=500)
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"),
                           extra="")  # fmt: skip
        log = tmp_path / "run1.log"
        proc = start(cfg, log)
        try:
            assert wait_for(lambda: hook.posts(), 30), log.read_text()
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        assert "stopped" in text and "Traceback" not in text
        assert "2 new, 0 updated, 1 match\n" in text  # one match, in the singular
        assert len(origin.gets("/tass.xml")) == 1
        db = tmp_path / "monitor.db"
        assert db_rows(db, "PRAGMA integrity_check")[0][0] == "ok"
        assert db_rows(db, "SELECT status FROM deliveries")[0][0] == "sent"

        # Fetched a moment ago with `every = "1h"`: a restart must not fetch it again now.
        log2 = tmp_path / "run2.log"
        proc = start(cfg, log2)
        try:
            time.sleep(6)  # longer than the start-up spread of due sources
            assert proc.poll() is None, log2.read_text()
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert len(origin.gets("/tass.xml")) == 1, log2.read_text()
        assert len(hook.posts()) == 1


def test_a_second_signal_stops_the_daemon_without_waiting_for_fetches_in_flight(tmp_path):
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(rss(LAVROV), delay=30)  # answers long after the grace
        origin.routes["/broken.xml"] = Route(b"", status=500)
        cfg = write_config(tmp_path / "m.toml", origin)
        cfg.write_text(cfg.read_text().replace('timeout = "5s"', 'timeout = "60s"'))
        log = tmp_path / "run.log"
        proc = start(cfg, log)
        try:
            assert wait_for(lambda: origin.gets("/tass.xml"), 20), log.read_text()
            proc.send_signal(signal.SIGTERM)
            assert wait_for(lambda: "signal again to stop now" in log.read_text(), 10)
            assert proc.poll() is None  # waiting for the fetch in flight
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert proc.wait(timeout=8) == 0
            assert time.monotonic() - started < 6
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "stopping: waiting up to 10s for 1 fetch in flight" in log.read_text()
    rows = db_rows(tmp_path / "monitor.db", "SELECT count(*) FROM posts")
    assert rows[0][0] == 0  # the abandoned fetch left nothing half-written


def test_the_daemon_tells_the_desk_a_source_has_been_failing_for_too_long(tmp_path):
    with Origin() as origin, Origin() as hook:
        origin.routes["/tass.xml"] = Route(rss(OTHER))
        origin.routes["/broken.xml"] = Route(b"", status=500)
        extra = '[alerts.dark]\nfailing_for = "6h"\nsources = ["broken"]\nnotify = ["hook"]\n'
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"), extra=extra)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "monitor", "fetch", "--config", str(cfg)],
                       env=env, cwd=tmp_path, capture_output=True, check=False)  # fmt: skip
        # It has been failing since yesterday: the daemon's first look says so, once.
        db = sqlite3.connect(tmp_path / "monitor.db")
        db.execute("UPDATE sources SET failing_since = '2026-01-01T00:00:00Z' WHERE id = 'broken'")
        db.commit()
        db.close()
        log = tmp_path / "run.log"
        proc = start(cfg, log)
        try:
            assert wait_for(lambda: hook.posts(), 30), log.read_text()
            time.sleep(1)
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        bodies = [json.loads(p.body) for p in hook.posts()]
    assert [(b["type"], b["source"]["id"]) for b in bodies] == [("source_failing", "broken")]
    assert "broken: source_failing (alert dark)" in log.read_text()


class HangingReceiver:
    """A webhook receiver on 127.0.0.1 that reads each POST and never answers it."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived: list[float] = []  # monotonic time of each POST
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.arrived.append(time.monotonic())
                receiver.release.wait(120)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> HangingReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_hanging_receiver_does_not_delay_a_healthy_ones_alert(tmp_path):
    """Three alerts hang at one webhook (20 s timeout each); a new match for another goes out."""
    quiet = ("1941300", "Weather in Moscow", "Snow is expected.")
    fresh = ("1941301", "Lavrov meets envoy", "Talks on NATO troops in Ukraine went on.")
    items = [(f"19412{i}", f"NATO item {i}", "NATO troops in Ukraine, again.") for i in range(3)]
    with Origin() as origin, Origin() as healthy, HangingReceiver() as hanging:
        origin.routes["/tass.xml"] = Route(rss(*items))
        origin.routes["/ria.xml"] = Route(rss(quiet))
        cfg = tmp_path / "m.toml"
        cfg.write_text(f"""
[monitor]
database = "{tmp_path / "monitor.db"}"
every = "1h"
timeout = "5s"

[sources.tass]
type = "feed"
url = "{origin.url("/tass.xml")}"

[sources.ria]
type = "feed"
url = "{origin.url("/ria.xml")}"
every = "1s"

[notifiers.slow]
type = "webhook"
url = "{hanging.url}"
timeout = "20s"

[notifiers.desk]
type = "webhook"
url = "{healthy.url("/hook")}"

[alerts.tass-nato]
query = 'NATO troops'
sources = ["tass"]
notify = ["slow"]

[alerts.ria-nato]
query = 'NATO troops'
sources = ["ria"]
notify = ["desk"]
""")
        log = tmp_path / "run.log"
        proc = start(cfg, log)
        try:
            # The slow receiver has the first of its alerts, and will hold it for 20 s.
            assert wait_for(lambda: hanging.arrived, 30), log.read_text()
            origin.routes["/ria.xml"] = Route(rss(quiet, fresh))  # fetched every second
            assert wait_for(lambda: healthy.posts(), 25), log.read_text()
            got = time.monotonic()
            # Delivered while the slow receiver still holds its first alert: before its
            # timeout, no other send could have freed a one-at-a-time outbox.
            assert got - hanging.arrived[0] < 20, log.read_text()
            hanging.release.set()
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    body = healthy.posts()[0].body.decode()
    assert "1941301" in body
    assert "Traceback" not in log.read_text()
