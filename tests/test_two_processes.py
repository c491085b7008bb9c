"""`monitor fetch` and `monitor search` run over and over while `monitor run` works on the same file."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_crash import (
    Newsroom,
    Stage,
    check_archive,
    connect,
    settled,
    write_config,
)
from tests.test_daemon import start, stop

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("MONITOR_TWO_PROCESS_SECONDS", "20"))
MAX_RUNS = 200  # per worker: a bound on the loop whatever the machine's speed
SETTLE_TIMEOUT = 60.0


@dataclass
class Run:
    args: list[str]
    code: int
    out: str
    err: str


def monitor(cfg: Path, *args: str) -> Run:
    cmd = [sys.executable, "-m", "monitor", *args, "--config", str(cfg)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=cfg.parent, timeout=60, check=False
    )
    return Run(list(args), done.returncode, done.stdout, done.stderr)


def repeat(cfg: Path, commands: list[list[str]], until: float, runs: list[Run]) -> None:
    for i in range(MAX_RUNS):
        if time.monotonic() >= until:
            return
        runs.append(monitor(cfg, *commands[i % len(commands)]))


def test_fetch_and_search_processes_share_the_archive_with_a_running_daemon(tmp_path):
    rng = random.Random(5)
    newsroom = Newsroom(rng, initial={})

    def hook_delay(name: str) -> float:
        # A slow receiver keeps deliveries in flight, so the processes' outbox passes overlap.
        return 0.2 if name == "slow" else 0.0

    with Stage(newsroom, hook_delay=hook_delay) as stage:
        # feed1 is disabled: only `monitor fetch feed1` reads it (another source than the
        # daemon's); feed2 is read by both (the same source, from two processes).
        cfg = write_config(tmp_path / "monitor.toml", stage, run=0, disabled=(1,))
        daemon = start(cfg, tmp_path / "run.log")
        # `monitor search` reads an archive; making one is for the daemon (or a fetch).
        archive_by = time.monotonic() + 30
        while not (tmp_path / "monitor.db").exists() and time.monotonic() < archive_by:
            time.sleep(0.05)
        fetches: list[Run] = []
        more_fetches: list[Run] = []
        searches: list[Run] = []
        until = time.monotonic() + SECONDS
        workers = [
            threading.Thread(
                target=repeat,
                args=(
                    cfg,
                    [["fetch", "feed1", "--json"], ["fetch", "feed2", "feed1", "--json"]],
                    until,
                    fetches,
                ),
            ),  # fmt: skip
            threading.Thread(target=repeat, args=(cfg, [["fetch", "feed2"]], until, more_fetches)),
            threading.Thread(
                target=repeat,
                args=(
                    cfg,
                    [["search", "NATO troops Ukraine", "--json", "--limit", "100000"]],
                    until,
                    searches,
                ),
            ),  # fmt: skip
        ]
        try:
            for w in workers:
                w.start()
            for _ in range(int(SECONDS / 0.7)):  # the outlets publish and edit meanwhile
                newsroom.mutate()
                time.sleep(0.7)
            for w in workers:
                w.join(timeout=SECONDS + 120)
            last = monitor(cfg, "fetch", "feed1")  # feed1's final content: nobody else reads it
            items = newsroom.all_items()
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while not settled(tmp_path / "monitor.db", items) and time.monotonic() < deadline:
                time.sleep(0.25)
            assert stop(daemon) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=10)
        with stage.cond:
            hooks = list(stage.hooks)

    runs = [*fetches, *more_fetches, *searches, last]
    print(
        f"{len(fetches) + len(more_fetches) + 1} fetch and {len(searches)} search processes "
        f"beside the daemon; {len(items)} posts, {len(hooks)} POSTs"
    )
    assert len(fetches) >= 3 and len(more_fetches) >= 3 and len(searches) >= 3
    logs = {f"monitor {' '.join(r.args)}": r.err for r in runs}
    logs["monitor run"] = (tmp_path / "run.log").read_text(errors="replace")
    locked = {cmd: err[-1500:] for cmd, err in logs.items() if "locked" in err or "busy" in err}
    assert not locked, locked
    crashed = {cmd: err[-1500:] for cmd, err in logs.items() if "Traceback" in err}
    assert not crashed, crashed
    failed = [(r.args, r.code, r.err[-500:]) for r in runs if r.code != 0]
    assert not failed, failed
    for r in fetches:
        assert json.loads(r.out)["ok"]

    # Each search sees a snapshot: the archive only grows and matching posts keep matching,
    # so a later search never finds fewer posts than an earlier one.
    counts = [len(json.loads(r.out)) for r in searches]
    assert counts == sorted(counts), counts

    with connect(tmp_path / "monitor.db") as db:
        bad = db.execute(
            "SELECT source_id, error FROM fetches WHERE ok IS NOT 1 OR finished_at IS NULL"
        ).fetchall()
    assert [tuple(b) for b in bad] == []
    deliveries = check_archive(tmp_path / "monitor.db", items)
    # Nothing crashed here, so every delivery is POSTed exactly once, whichever process sent it.
    times = Counter(h.webhook_id for h in hooks)
    assert set(times) == set(deliveries)
    doubled = {wid: n for wid, n in times.items() if n > 1}
    assert not doubled, f"{len(doubled)} of {len(times)} deliveries were POSTed more than once"
