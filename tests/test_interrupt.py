"""A `monitor fetch` that is stopped says what it stored, and leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.cli import main
from tests.origin import Origin, Route

FEED = (
    "<rss version='2.0'><channel><title>t</title>"
    "<item><title>NATO {n}</title><link>https://e.org/{n}</link><guid>{n}</guid></item>"
    "</channel></rss>"
)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(tmp_path: Path, origin: Origin) -> tuple[subprocess.Popen[bytes], Path]:
    origin.routes["/fast"] = Route(FEED.format(n=1).encode())
    origin.routes["/slow"] = Route(FEED.format(n=2).encode(), delay=30)
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nallow_private = true\ntimeout = "60s"\n'
        f'[sources.fast]\ntype = "feed"\nurl = "{origin.url("/fast")}"\n'
        f'[sources.slow]\ntype = "feed"\nurl = "{origin.url("/slow")}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "fetch", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not origin.gets("/slow") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the fast source stored
    return proc, cfg


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc")
def test_sigterm_during_fetch_says_what_was_stored_and_marks_the_rest(tmp_path, capsys):
    with Origin() as origin:
        proc, cfg = _start(tmp_path, origin)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err.decode()
    text = err.decode()
    assert "interrupted: 1 of 2 sources done, 1 new and 0 updated posts stored; 1 stopped" in text
    assert "Traceback" not in text
    assert workers and not any(_alive(w) for w in workers)
    assert main(["sources", "--config", str(cfg)]) == 0
    listed = capsys.readouterr().out
    assert "slow  [feed, every 15m]  interrupted" in listed
    assert "fast  [feed, every 15m]  ok" in listed


_PARENT = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-m", "monitor.parsework", str(os.getpid())],
                          stdin={fd}, stdout=subprocess.DEVNULL)
print(worker.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's parent-death signal")
def test_the_parse_worker_ends_with_a_parent_that_was_killed():
    # The worker's stdin stays open (this test holds its other end), so the worker never
    # reads an EOF: only its parent's death can end it, as when a parent is killed while
    # the worker is busy with a large document.
    r, w = os.pipe()
    parent = subprocess.Popen([sys.executable, "-c", _PARENT.format(fd=r)], pass_fds=(r,),
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        time.sleep(1.0)  # started, and waiting for a job
        assert _alive(worker)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker)
    finally:
        os.close(r)
        os.close(w)
        if parent.poll() is None:
            parent.kill()
