"""Where a cold `monitor fetch` pass's wall time goes: both processes on one timeline.

    python bench/bench_timeline.py [--feeds 200] [--items 30] [--hosts one|many] [--bin 0.1]

Serves bench_poll's feeds (bench/_server.py), runs one cold pass with bench_poll's 3 alerts,
and shows when the fetching process and its parse worker (monitor.parsework) were busy and
when each waited for the other. Two kinds of evidence, both independent of how fast the CPU
is on the day:

- the kernel's own accounting of each process (/proc/PID/schedstat): time on a core, time
  runnable but waiting for one (another process had it), and the rest, time asleep (waiting
  for the other process, or the network);
- steps timestamped inside both processes: each feed fetched, handed to the worker or parsed
  here, answered, saved (group commits), each matching batch, the worker's start-up and
  imports, closing the archive. The timestamps come from wrappers this script puts around
  those functions before the pass starts (the worker is started through this script too);
  the monitor's code is unchanged. CPU per process is sampled from /proc every 2 ms.

A bin of the table shows each process's share of a core in it and what happened in it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TCK = os.sysconf("SC_CLK_TCK")
# The events of the table's last column, by their short names.
SHOWN = {"get_end": "fetched", "parsed_here": "parsed-here", "parse_end": "parsed-there",
         "answer": "answers", "commit_start": "commits", "match_start": "match"}  # fmt: skip


def _events(out: Path, who: str) -> tuple[Any, Any]:
    """An `ev(kind, detail)` that records into memory, and a function that writes them out."""
    got: list[tuple[float, str, str, Any]] = []

    def ev(kind: str, detail: Any = "") -> None:
        got.append((time.monotonic(), who, kind, detail))

    def dump() -> None:
        out.with_suffix(f".{who}.json").write_text(json.dumps(got))

    return ev, dump


def instrument_parent(out: Path) -> Any:
    """Wrap the steps of a pass in the fetching process; returns the function that saves."""
    ev, dump = _events(out, "main")
    import monitor.parsework as pw

    def start(cls: type) -> Any:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(out), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        pw._widen(proc.stdin, proc.stdout)
        ev("worker_launched")
        # Only now: `monitor fetch` imports the rest after it has launched the worker.
        wrap_steps(ev, pw)
        return cls(proc)

    pw.ParseWorker.start = classmethod(start)  # type: ignore[assignment]
    return dump


def wrap_steps(ev: Any, pw: Any) -> None:
    from monitor import runner
    from monitor.archive import commits
    from monitor.archive.sqlite import Store
    from monitor.http import Http

    def around(owner: Any, name: str, before: str, after: str, detail: Any = None) -> None:
        orig = getattr(owner, name)
        if asyncio_fn(orig):

            async def wrapped_async(*a: Any, **k: Any) -> Any:
                ev(before, detail(*a) if detail else "")
                try:
                    return await orig(*a, **k)
                finally:
                    ev(after)

            setattr(owner, name, wrapped_async)
        else:

            def wrapped(*a: Any, **k: Any) -> Any:
                ev(before, detail(*a) if detail else "")
                try:
                    return orig(*a, **k)
                finally:
                    ev(after)

            setattr(owner, name, wrapped)

    around(runner, "open_store", "open_store", "store_opened")
    around(runner, "fetch_pass", "pass_start", "pass_end")
    around(runner, "match_pending", "match_start", "match_end")
    around(commits.GroupCommit, "_commit", "commit_start", "commit_end", lambda s: len(s._queue))
    around(Http, "get", "get_start", "get_end")
    around(Store, "close", "close_start", "close_end")
    around(pw.ParseWorker, "aclose", "worker_stop", "worker_stopped")
    parse = pw.ParseWorker.parse

    async def counted(self: Any, fn: Any, *args: Any) -> Any:
        sent = self._next_id
        result = await parse(self, fn, *args)
        # When the source has its posts, from the worker or from this process.
        there = self._next_id > sent
        ev("worker_posts" if there else "parsed_here", [self._ready, len(self._pending)])
        return result

    pw.ParseWorker.parse = counted  # type: ignore[method-assign]
    loads = pw.pickle.loads

    class Pickle:  # the parent reads each answer with pickle.loads: that is its arrival
        HIGHEST_PROTOCOL = pw.pickle.HIGHEST_PROTOCOL
        dumps = staticmethod(pw.pickle.dumps)

        @staticmethod
        def loads(data: bytes) -> Any:
            ev("answer")
            return loads(data)

    pw.pickle = Pickle


def asyncio_fn(fn: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def run_parent(out: Path, argv: list[str]) -> None:
    """`monitor fetch ARGV`, instrumented, exiting as the command does."""
    from monitor import cli

    dump = instrument_parent(out)
    main = cli.main

    def main_then_save(*a: Any) -> int:
        code = main(*a)
        dump()
        return code

    cli.main = main_then_save  # type: ignore[assignment]
    sys.argv = ["monitor", "fetch", *argv]
    cli.run()


def run_worker(out: Path, parent: int) -> None:
    """monitor.parsework's worker, its start-up and each document timestamped (written as
    they happen: the parent kills it at the end of the pass)."""
    log = open(out.with_suffix(".worker.jsonl"), "w")  # noqa: SIM115 - open till it is killed

    def ev(kind: str, detail: Any = "") -> None:
        log.write(json.dumps((time.monotonic(), "worker", kind, detail)) + "\n")
        log.flush()

    ev("worker_start")
    import monitor.parsework as pw

    resolve = pw._resolve

    def timed(key: str) -> Any:
        fn = resolve(key)
        ev("ready")

        def parse(*args: Any) -> Any:
            ev("parse_start")
            try:
                return fn(*args)
            finally:
                ev("parse_end")

        return parse

    pw._resolve = timed  # type: ignore[assignment]
    pw._die_with_parent(parent)
    pw._serve()


def _schedstat(pid: int) -> tuple[float, float] | None:
    """(seconds on a core, seconds runnable waiting for one), from the kernel."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            on_cpu, waiting, _ = f.read().split()
        return int(on_cpu) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError):
        return None


def _cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TCK
    except (OSError, IndexError):
        return None


def timeline(config: Path, db: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run the pass and sample both processes until it ends."""
    t0 = time.monotonic()
    cmd = [sys.executable, __file__, "--parent", str(out), "--config", str(config),
           "--db", str(db), "--no-alerts", "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=db.parent)
    samples: list[tuple[float, float | None, float | None]] = []
    worker: int | None = None
    last: dict[str, tuple[float, tuple[float, float]]] = {}
    first_seen: float | None = None
    while proc.poll() is None:
        now = time.monotonic()
        if worker is None:
            try:
                kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            except OSError:
                kids = []
            if kids:
                worker, first_seen = int(kids[0]), now
        samples.append((now, _cpu(proc.pid), _cpu(worker)))
        for who, pid in (("main", proc.pid), ("worker", worker)):
            if pid is not None and (stat := _schedstat(pid)) is not None:
                last[who] = (now, stat)
        time.sleep(0.002)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"monitor fetch exited {proc.returncode}")
    lives = {"main": (t0, last["main"])}
    if "worker" in last and first_seen is not None:
        lives["worker"] = (first_seen, last["worker"])
    return {"t0": t0, "wall": wall, "samples": samples, "lives": lives}


def report(run: dict[str, Any], out: Path, width: float) -> None:
    t0 = run["t0"]
    events = json.loads(out.with_suffix(".main.json").read_text())
    worker_log = out.with_suffix(".worker.jsonl")
    if worker_log.exists():
        events += [json.loads(line) for line in worker_log.read_text().splitlines()]
    events.sort()
    print(f"wall {run['wall']:.3f} s; load average {os.getloadavg()[0]:.2f}")
    for who, (born, (seen, (on_cpu, waiting))) in run["lives"].items():
        life = seen - born
        print(f"  {who:6s} alive {life:.3f} s: on a core {on_cpu:.3f}, waiting for a core "
              f"{waiting:.3f}, asleep {max(0.0, life - on_cpu - waiting):.3f}")  # fmt: skip
    firsts: dict[str, float] = {}
    lasts: dict[str, float] = {}
    counts: collections.Counter[str] = collections.Counter()
    for t, who, kind, detail in events:
        key = f"{who}:{kind}" + (f" (ready {detail[0]})" if kind == "parsed_here" else "")
        firsts.setdefault(key, t - t0)
        lasts[key] = t - t0
        counts[key] += 1
    print("\nsteps (s from launch): first, last, count")
    for key in sorted(firsts, key=lambda k: firsts[k]):
        print(f"  {key:24s} {firsts[key]:7.3f} {lasts[key]:7.3f} {counts[key]:5d}")
    busy: dict[int, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for (_, a0, b0), (t, a1, b1) in zip(run["samples"], run["samples"][1:], strict=False):
        i = int((t - t0) / width)
        if a0 is not None and a1 is not None:
            busy[i][0] += a1 - a0
        if b0 is not None and b1 is not None:
            busy[i][1] += b1 - b0
    happened: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for t, _, kind, _ in events:
        if kind in SHOWN:
            happened[int((t - t0) / width)][SHOWN[kind]] += 1
    print(f"\n{'s':>5} {'main':>5} {'worker':>6}  (share of a core; /proc ticks are 10 ms)")
    for i in range(int(run["wall"] / width) + 1):
        a, b = busy[i]
        what = " ".join(f"{k} {n}" for k, n in sorted(happened[i].items()))
        print(f"{i * width:5.2f} {100 * a / width:4.0f}% {100 * b / width:5.0f}%  {what}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--parent":
        return run_parent(Path(sys.argv[2]), sys.argv[3:])
    if len(sys.argv) > 3 and sys.argv[1] == "--worker":
        return run_worker(Path(sys.argv[2]), int(sys.argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--feeds", type=int, default=200)
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--hosts", choices=["one", "many"], default="one")
    p.add_argument("--bin", type=float, default=0.1, help="seconds a row of the table covers")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes first (bytecode, caches)")
    args = p.parse_args()
    sys.path.insert(0, str(BENCH))
    from bench_poll import ALERTS, Server, monitor_config

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MONITOR_CONFIG", "PYTHONDONTWRITEBYTECODE")
    }
    env["PYTHONPYCACHEPREFIX"] = str(BENCH / "out" / "pycache")  # as bench_poll runs it
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    server = Server(args.feeds, args.items, 0.0, 3600.0, one_host=args.hosts == "one")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-timeline-") as tmp:
            config = Path(tmp) / "monitor.toml"
            monitor_config(config, server.urls, ALERTS)
            for i in range(args.warmup + 1):
                db = Path(tmp) / f"pass{i}.db"
                run = timeline(config, db, Path(tmp) / f"trace{i}", env)
            report(run, Path(tmp) / f"trace{args.warmup}", args.bin)
    finally:
        server.close()


if __name__ == "__main__":
    main()
