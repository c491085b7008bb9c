"""Benchmark: what bounds a cold `monitor fetch` pass, its parsing or the fetching process.

    python bench/bench_bound.py [--feeds 200] [--items 30] [--reps 5] [--hosts one|many]

Serves bench_poll's feeds (bench/_server.py) and runs, interleaved round by round:
- `monitor fetch`, cold, with bench_poll's 3 alerts, as it is;
- the same pass with parsing free: its parse worker starts up as usual (lxml and the parsers
  imported), then answers each document with the posts, notices and folds that this script
  read from it once before the rounds. The worker's CPU per document is then what it costs
  to unpickle and pickle an answer, and the pass costs what it would with an infinitely
  fast parser;
- newsboat's cold reload, the anchor of issue 14's "at least 3x newsboat".

Both monitor runs start through this script, which changes nothing in the free pass but
where the worker's answers come from, and records the fetching process's own CPU
(getrusage) apart from its worker's. Wall time and CPU of the whole run come from wait4, as
in bench_poll.py. Each run must fetch every feed once and store every item.

The free pass's wall time is the least any parser could give this fetching process: when
newsboat's time over it is below a target, no work on parsing alone reaches that target,
and the fetching process's own CPU (its start-up, HTTP, the archive) is where it is spent.
"""

from __future__ import annotations

# Only what the two roles below need: this module is also the fetching process and its
# worker (`--parent`, `--free-worker`), whose start-up is part of what is measured. What the
# script itself needs is imported in main().
import contextlib
import json
import os
import pickle
import resource
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def run_parent(out: Path, answers: str, argv: list[str]) -> None:
    """`monitor fetch ARGV` as the command runs it; with `answers` (a file, not "-") its parse
    worker is this script's free one. Writes the process's own CPU and its children's."""
    from monitor import cli

    if answers != "-":
        import monitor.parsework as pw

        def start(cls: type) -> Any:
            import subprocess

            proc = subprocess.Popen(
                [sys.executable, __file__, "--free-worker", answers, str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            pw._widen(proc.stdin, proc.stdout)
            return cls(proc)

        pw.ParseWorker.start = classmethod(start)  # type: ignore[assignment]
    main = cli.main

    def main_then_count(*a: Any) -> int:
        code = main(*a)  # the worker is reaped inside: its CPU is among the children's
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.write_text(json.dumps({
            "own": own.ru_utime + own.ru_stime, "worker": kids.ru_utime + kids.ru_stime,
        }))  # fmt: skip
        return code

    cli.main = main_then_count  # type: ignore[assignment]
    sys.argv = ["monitor", "fetch", *argv]
    cli.run()


def run_free_worker(answers: Path, parent: int) -> None:
    """monitor.parsework's worker, answering from `answers` (by URL path) instead of parsing.

    Its start-up is the real one: the parsers and lxml are imported before it says it is
    ready, so the fetching process hands it documents from the same moment as usual. A
    document that is not in `answers` is parsed as usual.
    """
    import monitor.parsework as pw

    start_up = pw._start_up

    def free_start_up() -> tuple[dict[str, Any], Any]:
        parsers, folds_of = start_up()
        with open(answers, "rb") as f:
            known: dict[str, bytes] = pickle.load(f)  # pickled answers, unpickled when asked
        folds: list[dict[str, str] | None] = [None]

        def answer(parse: Any) -> Any:
            def free(body: bytes, url: str, *rest: Any) -> Any:
                blob = known.get(urlsplit(url).path)
                if blob is None:
                    folds[0] = None
                    return parse(body, url, *rest)
                result, folds[0] = pickle.loads(blob)
                return result

            return free

        def free_folds(texts: Any) -> dict[str, str]:
            return folds[0] if folds[0] is not None else folds_of(texts)

        return {key: answer(fn) for key, fn in parsers.items()}, free_folds

    pw._start_up = free_start_up  # type: ignore[assignment]
    pw._die_with_parent(parent)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):  # as the real worker
        pw._serve()


def read_answers(urls: list[str], path: Path) -> None:
    """Each feed fetched and read once, here, as the worker would answer it."""
    import urllib.request

    sys.path.insert(0, str(REPO))
    from monitor.feeds.document import read_feed
    from monitor.text import folds_of

    known = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body, content_type = resp.read(), resp.headers.get("content-type")
        result = read_feed(body, url, content_type)
        folds = folds_of(t for p in result[0] for t in (p.title, p.text, p.author))
        known[urlsplit(url).path] = pickle.dumps((result, folds), pickle.HIGHEST_PROTOCOL)
    path.write_bytes(pickle.dumps(known, pickle.HIGHEST_PROTOCOL))


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--parent":
        return run_parent(Path(sys.argv[2]), sys.argv[3], sys.argv[4:])
    if len(sys.argv) > 3 and sys.argv[1] == "--free-worker":
        return run_free_worker(Path(sys.argv[2]), int(sys.argv[3]))
    import argparse
    import shutil
    import statistics
    import tempfile
    import time

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--feeds", type=int, default=200)
    p.add_argument("--items", type=int, default=30)
    p.add_argument("--reps", type=int, default=5, help="counted rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    p.add_argument("--hosts", choices=["one", "many"], default="one")
    p.add_argument("--timeout", type=float, default=300.0, help="kill a run after this (s)")
    args = p.parse_args()
    if args.reps < 1 or args.feeds < 2 or args.items < 1 or args.warmup < 0:
        p.error("--reps and --items must be at least 1, --feeds at least 2 (a worker needs two)")
    sys.path.insert(0, str(BENCH))
    from bench_poll import (
        ALERTS,
        Server,
        best_wall,
        count_rows,
        expect,
        measure,
        monitor_config,
        newsboat_reload,
    )

    env = {
        k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG" and "proxy" not in k.lower()
    }
    mon_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    mon_env["PYTHONPYCACHEPREFIX"] = str(BENCH / "out" / "pycache")  # as bench_poll runs it
    mon_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    newsboat = shutil.which("newsboat")
    if newsboat is None:
        print("newsboat is not installed (`apt-get install -y newsboat`): left out.")
    n_items = args.feeds * args.items
    server = Server(args.feeds, args.items, 0.0, 3600.0, one_host=args.hosts == "one")
    tmp = Path(tempfile.mkdtemp(prefix="bench-bound-"))
    kinds = ("as it is", "parse free")
    walls: dict[str, list[float]] = {k: [] for k in (*kinds, "newsboat")}
    cpus: dict[str, list[float]] = {k: [] for k in (*kinds, "newsboat")}
    own: dict[str, list[float]] = {k: [] for k in kinds}
    worker: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        where = "on one loopback address" if args.hosts == "one" else "on their own addresses"
        print(f"{args.feeds} feeds × {args.items} items {where}; {args.reps} rounds (medians) "
              f"after {args.warmup} uncounted; {os.cpu_count()} CPUs", flush=True)  # fmt: skip
        config = tmp / "monitor.toml"
        monitor_config(config, server.urls, ALERTS)
        answers = tmp / "answers.pickle"
        started = time.perf_counter()
        read_answers(server.urls, answers)
        print(f"read every feed once for the free worker: {time.perf_counter() - started:.2f} s")
        (tmp / "urls").write_text("\n".join(server.urls) + "\n", encoding="utf-8")
        for rep in range(args.warmup + args.reps):
            counted = rep >= args.warmup
            run_dir = tmp / f"rep{rep}"
            run_dir.mkdir()
            line = []
            for kind in kinds:
                db = run_dir / f"{kind.replace(' ', '-')}.db"
                counts = run_dir / f"{kind.replace(' ', '-')}.json"
                cmd = [sys.executable, __file__, "--parent", str(counts),
                       str(answers) if kind == "parse free" else "-",
                       "--config", str(config), "--db", str(db), "--no-alerts", "-q"]  # fmt: skip
                before = server.stats()
                run = measure(cmd, run_dir, mon_env, run_dir / "monitor.log", args.timeout)
                expect(server, before, "200", args.feeds, f"{kind}, round {rep}")
                if (got := count_rows(db, "posts")) != n_items:
                    raise SystemExit(f"{kind}, round {rep}: {got} posts, expected {n_items}")
                split = json.loads(counts.read_text())
                line.append(f"{kind} {run.wall:.2f}s (own CPU {split['own']:.2f}s)")
                if counted:
                    walls[kind].append(run.wall)
                    cpus[kind].append(run.cpu)
                    own[kind].append(split["own"])
                    worker[kind].append(split["worker"])
            if newsboat:
                before = server.stats()
                run = newsboat_reload(newsboat, tmp / "urls", run_dir, env, args.timeout)
                expect(server, before, "200", args.feeds, f"newsboat, round {rep}")
                if (got := count_rows(run_dir / "newsboat.db", "rss_item")) != n_items:
                    raise SystemExit(f"newsboat, round {rep}: {got} items, expected {n_items}")
                line.append(f"newsboat {run.wall:.2f}s")
                if counted:
                    walls["newsboat"].append(run.wall)
                    cpus["newsboat"].append(run.cpu)
            label = f"round {rep - args.warmup + 1}/{args.reps}" if counted else "warm-up"
            print(f"  {label}: {', '.join(line)}  (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print(f"\n{'monitor fetch, cold':22s} {'wall s':>7s} {'CPU s':>7s} {'fetching':>9s} "
          f"{'worker':>7s}")  # fmt: skip
    for kind in kinds:
        print(f"{kind:22s} {med(walls[kind]):7.3f} {med(cpus[kind]):7.3f} "
              f"{med(own[kind]):9.3f} {med(worker[kind]):7.3f}")  # fmt: skip
    if not walls["newsboat"]:
        return
    nb = med(walls["newsboat"])
    print(f"{'newsboat':22s} {nb:7.3f} {med(cpus['newsboat']):7.3f}")
    print("(fetching: the CPU of `monitor fetch`'s own process; worker: its parse worker's)")
    real, free = med(walls["as it is"]), med(walls["parse free"])
    print(f"\nnewsboat / monitor, cold: {nb / real:.2f}x as it is (the most its CPU allows on "
          f"{os.cpu_count()} cores: {nb / best_wall(med(cpus['as it is'])):.2f}x)")  # fmt: skip
    print(f"  with parsing free: {nb / free:.2f}x, the most any parser could give; the fetching "
          f"process alone spends {med(own['parse free']):.3f} s of CPU, "
          f"{nb / med(own['parse free']):.2f}x newsboat's wall time")  # fmt: skip


if __name__ == "__main__":
    main()
