"""Benchmark: a `monitor fetch` pass over N local RSS feeds, cold and warm, beside rss2email and newsboat.

    python bench/bench_poll.py [--feeds 200] [--items 30] [--reps 5] [--hosts both] [--delay-ms 0]

The feeds are served by bench/_server.py in its own process, all on one loopback address
(`--hosts one`: an outlet's feeds on its one host, so the monitor's per-host limit of 2 holds)
or each on its own (`--hosts many`: 127.0.0.2, 127.0.0.3, ...). The monitor runs cold with the
3 alerts below, with none, and with 10 broad ones that match a third of the posts; each tool
runs as a whole process, timed from outside; its CPU time and peak RSS come from wait4().
See bench/README.md for what each side does.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

# A few alerts, so that a pass also runs the matching it always runs in production.
ALERTS = {
    "nato-troops-ukraine": "NATO troops Ukraine",
    "troupes-au-sol": '"troupes au sol" OR NEAR(OTAN troupes, 10)',
    "voyska-nato": "НАТО войск* -Песков",
}

# A desk watching the war: 10 broad alerts, each matching about a third of the generated
# posts (the same third, as such alerts do), so a cold pass records ~18,000 matches.
_WAR = (
    "NATO OR OTAN OR НАТО OR Ukraine OR Украина OR Украины OR Ukrayna OR Kremlin OR Кремль "
    "OR Kreml OR Putin OR Poutine OR Путин"
)
HEAVY_ALERTS = {
    "war": _WAR,
    "war-prefix": "Ukrain* OR Украин* OR Ukrayn* OR NATO OR OTAN OR НАТО OR Kreml* OR Кремл* "
    "OR Putin OR Poutine OR Путин",
    "war-no-gaza": f"({_WAR}) NOT Gaza",
    "war-no-sport": f"({_WAR}) -football",
    "war-russia": f"{_WAR} OR Russia OR Russie OR Россия",
    "war-leaders": "Putin OR Poutine OR Путин OR Kremlin OR Кремль OR Kreml OR NATO OR OTAN "
    "OR НАТО OR Ukraine OR Украины OR Ukrayna",
    "war-ru": "НАТО OR Украин* OR Кремл* OR Путин OR NATO OR Ukraine OR Kremlin OR Putin OR OTAN "
    "OR Poutine OR Ukrayna OR Kreml",
    "war-no-drill": f"({_WAR}) -exercise -учения",
    "war-kyiv": f"{_WAR} OR Kyiv OR Kiev OR Киев",
    "war-no-ads": f"({_WAR}) NOT sponsored",
}

TARGETS = {
    "cold_r2e": 10.0, "cold_newsboat": 3.0, "heavy_r2e": 5.0, "heavy_over_none": 1.5,
    "us_per_match": 25.0, "warm_r2e": 3.0, "warm_newsboat": 20.0, "rss_mb": 150.0,
}  # fmt: skip
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1  # a cold pass's best case keeps them all busy (`best_wall`)
WARM_AT = 2000  # the warm targets are set at this many feeds (issue 14), not at 200
LOADS: list[float] = []  # the load average after each counted round


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float


@dataclass
class Tool:
    name: str
    cold: list[Run] = field(default_factory=list)
    warm: list[Run] = field(default_factory=list)
    matches: list[int] = field(default_factory=list)
    # The feed server's CPU during each of the monitor's cold runs, on the same cores.
    server: list[float] = field(default_factory=list)
    # CPU per match of the match step alone (bench_match_step.py), for the heavy alerts.
    step_us: float | None = None

    def median(self, phase: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in getattr(self, phase))

    def peak_mb(self) -> float:
        return max(r.rss_mb for r in self.cold + self.warm)

    def has(self, phase: str) -> bool:
        return bool(getattr(self, phase))


def us_per_match(heavy: Tool, none: Tool) -> float | None:
    """CPU per match, in pairs: each round's pass with the 10 alerts against the pass with
    none run just before it, per match, and the median of those. A difference of two medians
    took the noise of both: on a VM whose speed moves within minutes it gave anything from
    -2.5 to 42 us where 20 pairs gave 20 (bench/README.md, 2026-12-07)."""
    rounds = zip(heavy.cold, none.cold, heavy.matches, strict=True)
    pairs = [(h.cpu - n.cpu) / max(m, 1) for h, n, m in rounds]
    return statistics.median(pairs) * 1e6 if pairs else None


def match_step(
    python: str, archive: Path, config: Path, env: dict[str, str], timeout: float
) -> float:
    """bench_match_step.py on a cold pass's archive without matches: CPU per match with the
    rest of the pass's noise left out (the figure `us_per_match` cannot settle on a VM)."""
    out = archive.with_name("match-step.json")
    cmd = [python, str(BENCH / "bench_match_step.py"), str(archive), str(config)]
    subprocess.run([*cmd, "--json", str(out)], env=env, check=True, timeout=timeout)
    return float(json.loads(out.read_text())["us_per_match"])


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of the process (every thread of it), in seconds (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def measure(cmd: list[str], cwd: Path, env: dict[str, str], log: Path, timeout: float) -> Run:
    """Run `cmd` to completion; wall time, CPU and peak RSS of that one process (wait4)."""
    with open(log, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
        # The watchdog bounds a hung child; wait4 (not RUSAGE_CHILDREN) keeps the server's
        # own usage, and earlier children's peaks, out of this figure.
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}; log {log}:\n{tail}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


class Server:
    """bench/_server.py as a child process; it exits when our end of its stdin closes."""

    def __init__(
        self, feeds: int, items: int, delay_ms: float, lifetime: float, one_host: bool = False
    ) -> None:
        cmd = [sys.executable, str(BENCH / "_server.py"), "--feeds", str(feeds), "--items", str(items),
               "--delay-ms", str(delay_ms), "--lifetime", str(lifetime)]  # fmt: skip
        if one_host:
            cmd.append("--one-host")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            raise SystemExit("the feed server did not start (see its stderr above)")
        info = json.loads(line)
        self.urls: list[str] = info["urls"]
        self.stats_url: str = info["stats"]
        self.bytes_per_feed: int = info["bytes_per_feed"]
        self.gzip_bytes_per_feed: int = info["gzip_bytes_per_feed"]

    def cpu(self) -> float:
        """CPU seconds the server has used so far."""
        return sum(cpu_seconds(self.proc.pid))

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.stats_url, timeout=10) as resp:
            return json.loads(resp.read())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def expect(
    server: Server, before: dict[str, int], status: str, n: int, what: str
) -> dict[str, int]:
    """The run really fetched what we claim: n answers with `status` (`200|304`: either)
    and nothing else."""
    after = server.stats()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("200", "304", "404")}
    ok = delta["404"] == 0 and sum(delta[k] for k in status.split("|")) == n
    if not ok or sum(delta.values()) != n:
        raise SystemExit(f"{what}: the server answered {delta}, expected {n} × {status}")
    return delta


def monitor_config(path: Path, urls: list[str], alerts: dict[str, str]) -> None:
    lines = [
        "[monitor]",
        'database = "monitor.db"',
        'timeout = "60s"',
        'user_agent = "outlet-monitor-bench/0.1"',
        "",
    ]
    for i, url in enumerate(urls):
        lines += [f"[sources.feed-{i:04d}]", 'type = "feed"', f'url = "{url}"', ""]
    for aid, query in alerts.items():
        lines += [
            f"[alerts.{aid}]",
            f"query = {json.dumps(query, ensure_ascii=False)}",
            "notify = []",
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def newsboat_reload(
    newsboat: str, urls: Path, run_dir: Path, env: dict[str, str], timeout: float
) -> Run:
    """`newsboat -x reload` of the feeds listed in `urls`, its cache `run_dir/newsboat.db`."""
    cmd = [newsboat, "-x", "reload", "-u", str(urls), "-c", str(run_dir / "newsboat.db"),
           "-C", os.devnull]  # fmt: skip
    # Its own HOME, so nothing of the user's (config, lock, history) is read.
    home = {**env, "HOME": str(run_dir)}
    return measure(cmd, run_dir, home, run_dir / "newsboat.log", timeout)


def r2e_config(r2e: str, path: Path, urls: list[str], env: dict[str, str]) -> None:
    """`r2e new`, then the [feed.NAME] sections `r2e add` would write (one process, not N)."""
    data = path.with_suffix(".json")
    subprocess.run(
        [r2e, "-c", str(path), "-d", str(data), "new", "you@example.org"],
        check=True, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    with open(path, "a", encoding="utf-8") as f:
        for i, url in enumerate(urls):
            f.write(f"\n[feed.feed-{i:04d}]\nurl = {url}\n")
    listed = subprocess.run(
        [r2e, "-c", str(path), "-d", str(data), "list"],
        check=True, env=env, capture_output=True, text=True, timeout=60,
    ).stdout.splitlines()  # fmt: skip
    if len(listed) != len(urls):
        raise SystemExit(f"rss2email lists {len(listed)} feeds, expected {len(urls)}")
    data.unlink()


def count_rows(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def count_seen(data: Path) -> int:
    return sum(len(f.get("seen", {})) for f in json.loads(data.read_text())["feeds"])


def main() -> None:
    p = argparse.ArgumentParser(
        description="Poll N local feeds with `monitor fetch`, rss2email and newsboat."
    )
    p.add_argument("--feeds", type=int, default=200, help="number of feeds (default 200)")
    p.add_argument("--items", type=int, default=30, help="items per feed (default 30)")
    p.add_argument("--reps", type=int, default=5, help="cold+warm repetitions per tool (default 5)")
    p.add_argument("--hosts", choices=["one", "many", "both"], default="both",
                   help="feeds on one loopback address, on one each, or both in turn (default)")  # fmt: skip
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="the server waits this long before each answer, standing for network "
                   "latency (default 0: bare loopback)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    p.add_argument("--no-rss2email", action="store_true", help="leave rss2email out")
    p.add_argument("--no-newsboat", action="store_true", help="leave newsboat out")
    p.add_argument("--no-heavy", action="store_true",
                   help="leave out the cold passes with no alerts and with 10 broad ones")  # fmt: skip
    p.add_argument("--floors", action="store_true", help="also time bench/_floor.py (warm floors)")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs the monitor (default: this one); it needs the monitor's "
        "dependencies, e.g. a venv made from the interpreter rss2email runs on",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="kill a run after this (s)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--json", type=Path, help="also write the medians here (bench_summary.py)")
    args = p.parse_args()
    if args.reps < 1 or args.feeds < 1 or args.items < 1 or args.warmup < 0:
        p.error("--feeds, --items and --reps must be at least 1, --warmup at least 0")

    env = {
        k: v for k, v in os.environ.items() if k != "MONITOR_CONFIG" and "proxy" not in k.lower()
    }
    mon_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # An installed monitor has its bytecode compiled (pip does it); a private cache dir gives
    # the checkout the same, without writing into the repo's tree.
    mon_env["PYTHONPYCACHEPREFIX"] = str(BENCH / "out" / "pycache")
    mon_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    r2e = None if args.no_rss2email else shutil.which("r2e")
    if not args.no_rss2email and r2e is None:
        print("rss2email is not installed (`apt-get install -y rss2email`): left out.")
    newsboat = None if args.no_newsboat else shutil.which("newsboat")
    if not args.no_newsboat and newsboat is None:
        print("newsboat is not installed (`apt-get install -y newsboat`): left out.")
    print(
        f"{args.feeds} feeds × {args.items} items; server delay {args.delay_ms:g} ms; "
        f"{args.reps} repetitions (medians); {os.cpu_count()} CPUs\n"
        f"monitor on {_describe_python(args.python)}"
        + (f"; rss2email on {_describe_python(_script_python(r2e))}" if r2e else "")
        + (f"; {_newsboat_version(newsboat)}" if newsboat else ""),
        flush=True,
    )
    layouts = ["one", "many"] if args.hosts == "both" else [args.hosts]
    results = [
        (layout, run_layout(args, layout, env, mon_env, r2e, newsboat)) for layout in layouts
    ]
    for layout, (tools, floors) in results:
        report(layout, args.feeds, tools, args.feeds * args.items, floors)
    if args.json:
        args.json.write_text(json.dumps({
            "feeds": args.feeds, "items": args.items, "reps": args.reps, "cores": CORES,
            "load": [min(LOADS), max(LOADS)],
            "layouts": {layout: {name: {
                "cold": t.median("cold", "wall"), "cold_cpu": t.median("cold", "cpu"),
                "cold_server_cpu": statistics.median(t.server) if t.server else None,
                "warm": t.median("warm", "wall") if t.has("warm") else None,
                "warm_cpu": t.median("warm", "cpu") if t.has("warm") else None,
                "matches": statistics.median(t.matches) if t.matches else None,
                "rss_mb": t.peak_mb()} for name, t in tools.items()}
                for layout, (tools, _) in results},
            "us_per_match": {layout: us_per_match(tools["10 alerts"], tools["no alerts"])
                             for layout, (tools, _) in results if "10 alerts" in tools},
            "us_per_match_step": {layout: tools["10 alerts"].step_us
                                  for layout, (tools, _) in results if "10 alerts" in tools},
        }, indent=1))  # fmt: skip


def run_layout(
    args: argparse.Namespace,
    layout: str,
    env: dict[str, str],
    mon_env: dict[str, str],
    r2e: str | None,
    newsboat: str | None,
) -> tuple[dict[str, Tool], dict[str, list[Run]]]:
    """Every tool's rounds against one server, its feeds on one host or on many."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    # The server's own bound: long enough for every run to hit its --timeout, and no longer.
    lifetime = 8 * (args.warmup + args.reps) * args.timeout + 600
    server = Server(args.feeds, args.items, args.delay_ms, lifetime, one_host=layout == "one")
    n_items = args.feeds * args.items
    where = "on one loopback address" if layout == "one" else "on their own loopback addresses"
    print(
        f"\n{args.feeds} feeds {where} ({server.bytes_per_feed / 1024:.0f} KiB each, "
        f"{server.gzip_bytes_per_feed / 1024:.0f} KiB gzipped)",
        flush=True,
    )
    python = os.path.abspath(args.python)  # not resolved: a venv's python is a link
    configs = {"monitor": ALERTS}
    if not args.no_heavy:
        configs |= {"no alerts": {}, "10 alerts": HEAVY_ALERTS}
    for name, alerts in configs.items():
        monitor_config(tmp / f"{name.replace(' ', '-')}.toml", server.urls, alerts)
    tools = {name: Tool(name) for name in configs}
    floors: dict[str, list[Run]] = {"httpx": [], "h11": []}
    if r2e:
        r2e_config(r2e, tmp / "r2e.cfg", server.urls, env)
        tools["rss2email"] = Tool("rss2email")
    if newsboat:
        (tmp / "urls").write_text("\n".join(server.urls) + "\n", encoding="utf-8")
        tools["newsboat"] = Tool("newsboat")
    try:
        for rep in range(args.warmup + args.reps):
            # Interleaved, so drift in the machine's load touches every tool alike; warm-up
            # rounds fill the OS and bytecode caches and are not counted.
            counted = rep >= args.warmup
            run_dir = tmp / f"rep{rep}"
            run_dir.mkdir()
            line = []
            for name in configs:
                cfg = tmp / f"{name.replace(' ', '-')}.toml"
                db = run_dir / f"{name.replace(' ', '-')}.db"
                cmd = [python, "-m", "monitor", "fetch", "--config", str(cfg), "--db", str(db),
                       "--no-alerts", "-q"]  # fmt: skip
                log = run_dir / "monitor.log"
                before, served = server.stats(), server.cpu()
                cold = measure(cmd, run_dir, mon_env, log, args.timeout)
                served = server.cpu() - served
                expect(server, before, "200", args.feeds, f"{name} cold run {rep}")
                if (got := count_rows(db, "posts")) != n_items:
                    raise SystemExit(
                        f"{name} cold run {rep}: {got} posts stored, expected {n_items}"
                    )
                matches = count_rows(db, "matches")
                line.append(f"{name} cold {cold.wall:.2f}s")
                if counted:
                    tools[name].cold.append(cold)
                    tools[name].matches.append(matches)
                    tools[name].server.append(served)
                if name != "monitor":
                    continue
                before = server.stats()
                warm = measure(cmd, run_dir, mon_env, log, args.timeout)
                expect(server, before, "304", args.feeds, f"monitor warm run {rep}")
                line.append(f"warm {warm.wall:.2f}s")
                if counted:
                    tools[name].warm.append(warm)
                if args.floors:
                    for label, extra in (("httpx", []), ("h11", ["--without-httpx"])):
                        before = server.stats()
                        bare = measure([python, str(BENCH / "_floor.py"), str(db),
                                        str(run_dir / "floor.db"), *extra],
                                       run_dir, mon_env, log, args.timeout)  # fmt: skip
                        expect(server, before, "304", args.feeds, f"floor ({label}) run {rep}")
                        if counted:
                            floors[label].append(bare)
            if r2e:
                shutil.copy(tmp / "r2e.cfg", run_dir / "r2e.cfg")
                data = run_dir / "r2e.json"
                cmd = [r2e, "-c", str(run_dir / "r2e.cfg"), "-d", str(data), "run", "--no-send"]
                log = run_dir / "r2e.log"
                before = server.stats()
                cold = measure(cmd, run_dir, env, log, args.timeout)
                expect(server, before, "200", args.feeds, f"rss2email cold run {rep}")
                if (got := count_seen(data)) != n_items:
                    raise SystemExit(
                        f"rss2email cold run {rep}: {got} entries seen, expected {n_items}"
                    )
                before = server.stats()
                warm = measure(cmd, run_dir, env, log, args.timeout)
                expect(server, before, "304", args.feeds, f"rss2email warm run {rep}")
                line.append(f"rss2email cold {cold.wall:.2f}s warm {warm.wall:.2f}s")
                if counted:
                    tools["rss2email"].cold.append(cold)
                    tools["rss2email"].warm.append(warm)
            if newsboat:
                before = server.stats()
                cold = newsboat_reload(newsboat, tmp / "urls", run_dir, env, args.timeout)
                expect(server, before, "200", args.feeds, f"newsboat cold run {rep}")
                if (got := count_rows(run_dir / "newsboat.db", "rss_item")) != n_items:
                    raise SystemExit(f"newsboat cold run {rep}: {got} items, expected {n_items}")
                # `-x reload` sends no validators (2.21): its warm pass downloads again.
                before = server.stats()
                warm = newsboat_reload(newsboat, tmp / "urls", run_dir, env, args.timeout)
                expect(server, before, "200|304", args.feeds, f"newsboat warm run {rep}")
                line.append(f"newsboat cold {cold.wall:.2f}s warm {warm.wall:.2f}s")
                if counted:
                    tools["newsboat"].cold.append(cold)
                    tools["newsboat"].warm.append(warm)
            label = f"rep {rep - args.warmup + 1}/{args.reps}" if counted else "warm-up"
            load = os.getloadavg()[0]
            if counted:
                LOADS.append(load)
            print(f"  {label}: {', '.join(line)}  (load {load:.1f})", flush=True)
        if "10 alerts" in tools:  # on the last round's archive of the pass with no alerts
            tools["10 alerts"].step_us = match_step(
                python, run_dir / "no-alerts.db", tmp / "10-alerts.toml", mon_env, args.timeout
            )
    finally:
        server.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return tools, floors


def _newsboat_version(newsboat: str) -> str:
    out = subprocess.run([newsboat, "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()[0].split(" - ")[0] if out.stdout else "newsboat"


def _script_python(script: str) -> str:
    """The interpreter named on a console script's #! line."""
    with open(script, "rb") as f:
        first = f.readline().decode(errors="replace")
    return first[2:].strip().split()[0] if first.startswith("#!") else "python3"


def _describe_python(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0], sys.base_prefix)"],
        capture_output=True, text=True, timeout=60,
    ).stdout.split()  # fmt: skip
    return f"{python} (Python {out[0]} from {out[1]})" if len(out) == 2 else python


def best_wall(cpu: float, cores: int = CORES) -> float:
    """The least wall time a pass that spends `cpu` seconds of CPU can take on `cores`: every
    core busy from its first instruction to its last. A cold pass whose CPU alone puts this
    above an anchor's time over the target cannot meet the target on this machine, however it
    is scheduled: its CPU has to come down first."""
    return cpu / cores


def report(
    layout: str, n_feeds: int, tools: dict[str, Tool], n_items: int, floors: dict[str, list[Run]]
) -> None:
    where = "one host" if layout == "one" else f"{n_feeds} hosts"
    print(f"\n{where}: medians")
    head = (f"{'tool':<10} {'cold wall s':>11} {'items/s':>9} {'cold CPU s':>10} {'warm wall s':>11} "
            f"{'warm CPU s':>10} {'peak RSS MB':>11}")  # fmt: skip
    print(head)
    print("-" * len(head))
    med: dict[str, dict[str, float]] = {}
    for t in tools.values():
        row = {"cold": t.median("cold", "wall"), "cold_cpu": t.median("cold", "cpu")}
        if t.server:
            row["cold_server_cpu"] = statistics.median(t.server)
        if t.has("warm"):
            row |= {"warm": t.median("warm", "wall"), "warm_cpu": t.median("warm", "cpu")}
        med[t.name] = row
        warm = f"{row['warm']:>11.2f} {row['warm_cpu']:>10.2f}" if t.has("warm") else f"{'':>22}"
        print(f"{t.name:<10} {row['cold']:>11.2f} {n_items / row['cold']:>9.0f} "
              f"{row['cold_cpu']:>10.2f} {warm} {t.peak_mb():>11.1f}")  # fmt: skip
    print("(monitor: 3 alerts; no alerts; 10 alerts matching a third of the posts; MB = MiB)")
    print("targets (reported, not asserted):")
    m = med["monitor"]

    def verdict(label: str, ratio: float, goal: float, above: bool = True) -> None:
        ok = ratio >= goal if above else ratio <= goal
        sign = "≥" if above else "≤"
        print(f"  {label} {sign}{goal:g}: {ratio:.2f} — {'met' if ok else 'NOT met'}")

    for anchor, cold_goal, warm_goal in (("rss2email", "cold_r2e", "warm_r2e"),
                                         ("newsboat", "cold_newsboat", "warm_newsboat")):  # fmt: skip
        if anchor not in med:
            continue
        a = med[anchor]
        verdict(f"cold, {anchor}/monitor ×", a["cold"] / m["cold"], TARGETS[cold_goal])
        print(f"    (the most this CPU allows: {a['cold'] / best_wall(m['cold_cpu']):.2f}× "
              f"if the pass kept all {CORES} cores busy from start to end)")  # fmt: skip
        if served := m.get("cold_server_cpu"):
            print(f"    (and with the feed server's {served:.2f} s of CPU in the same pass, on "
                  f"the same cores: {a['cold'] / best_wall(m['cold_cpu'] + served):.2f}×)")  # fmt: skip
        if n_feeds >= WARM_AT:
            verdict(f"warm, {anchor}/monitor ×", a["warm"] / m["warm"], TARGETS[warm_goal])
        else:  # issue 14: a warm pass of a few hundred feeds is mostly start-up
            print(f"  warm, {anchor}/monitor ×: {a['warm'] / m['warm']:.2f} (the warm "
                  f"target, ≥{TARGETS[warm_goal]:g}, is for {WARM_AT:,} feeds)")  # fmt: skip
    if "10 alerts" in med:
        h, none = med["10 alerts"], med["no alerts"]
        matches = statistics.median(tools["10 alerts"].matches)
        if "rss2email" in med:
            verdict("cold, 10 alerts: rss2email/monitor ×", med["rss2email"]["cold"] / h["cold"],
                    TARGETS["heavy_r2e"])  # fmt: skip
        verdict("cold, 10 alerts / no alerts (wall) ×", h["cold"] / none["cold"],
                TARGETS["heavy_over_none"], above=False)  # fmt: skip
        per = us_per_match(tools["10 alerts"], tools["no alerts"]) or 0.0
        verdict(f"CPU per match over {matches:,.0f} matches (in pairs), µs", per,
                TARGETS["us_per_match"], above=False)  # fmt: skip
        if (step := tools["10 alerts"].step_us) is not None:
            verdict("CPU per match, the match step replayed (bench_match_step.py), µs", step,
                    TARGETS["us_per_match"], above=False)  # fmt: skip
    for label, runs in floors.items():
        if runs:
            print(
                f"  warm floor (bench/_floor.py, {label}): {statistics.median(r.wall for r in runs):.3f}s"
            )
    verdict("monitor peak RSS MB", tools["monitor"].peak_mb(), TARGETS["rss_mb"], above=False)


if __name__ == "__main__":
    main()
