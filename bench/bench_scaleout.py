"""Benchmark: 1, 2 and 4 `monitor run` workers on one PostgreSQL archive, beside one on SQLite.

    python bench/bench_scaleout.py      # --sources 5000 --items 20 --workers 1 2 4 --every 1m --window 120
    python bench/bench_scaleout.py --sources 500 --every 20s --window 40   # a quick run
    python bench/bench_scaleout.py --pg postgresql://user:pw@host/db       # an existing server
    python bench/bench_scaleout.py --sources 1000 --workers 1 2 --no-sqlite --cold-only

One origin (bench/_server.py, each feed on its own loopback address, ETag/304) serves every
row. Each row starts from an empty archive: a new schema on PostgreSQL (a throwaway cluster from
tests/pgserver.py unless --pg), a new file for the SQLite anchor (the single-daemon default).
Per row:

- cold: the workers are started (`monitor run`, real processes) and timed until every source
  has a row in `fetches`; the rate is the sources over the time from the first job's start to
  then (start-up, and the 0-5 s spread the queue gives sources due at once, left out);
- steady: after one more `every`, a window of --window seconds (a whole number of `every`s
  is best): the conditional polls (the origin's 304s), the CPU of the workers (utime+stime of
  their process trees, from /proc) and of PostgreSQL (its postmaster's tree: the postmaster with
  the time of the backends it reaped, and every live child: backends, checkpointer, background
  and WAL writers, autovacuum; the benchmark's own backend left out), per poll;
- lateness: job start minus its scheduled time (Procrastinate's `scheduled_at`, jitter
  included), from a trigger the benchmark adds on `procrastinate_jobs` (the workers delete
  finished jobs), p50/p95/max over the window; for every row also the interval between two
  fetches of a source (from `fetches`, to the second) against `every`.

The load average is printed with each row: on a machine shared with other work the figures
move with it. Asserts nothing; the target (two workers ≥ 1.7× one on the cold pass, on two
cores) is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
from bench_poll import Server  # noqa: E402

UNITS = {"s": 1, "m": 60, "h": 3600}
TICKS = os.sysconf("SC_CLK_TCK")
LATENESS_SQL = """
CREATE TABLE bench_starts (
    job_id BIGINT, lock TEXT, scheduled_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION bench_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_starts (job_id, lock, scheduled_at) VALUES (NEW.id, NEW.lock, NEW.scheduled_at);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_started AFTER UPDATE OF status ON procrastinate_jobs FOR EACH ROW
    WHEN (OLD.status = 'todo' AND NEW.status = 'doing') EXECUTE FUNCTION bench_started();
"""


def seconds(text: str) -> float:
    return float(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else float(text)


def proc_cpu(pid: int, children: bool = False) -> float:
    """utime+stime of one process in seconds (with `children`, also those it has reaped)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; fields[0] is the state
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def tree_cpu(root: int, skip: frozenset[int] = frozenset()) -> float:
    """A process, what it reaped, and its live descendants (and what they reaped)."""
    return sum(proc_cpu(p, children=True) for p in descendants(root) if p not in skip)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class Row:
    name: str
    workers: int
    cold: float = 0.0  # s from start to every source fetched
    cold_rate: float = 0.0  # sources/s from the first job's start
    cold_worker_cpu: float = 0.0
    cold_pg_cpu: float | None = None
    polls: int = 0
    window: float = 0.0
    worker_cpu: float = 0.0
    pg_cpu: float | None = None
    late: list[float] = field(default_factory=list)
    intervals: list[float] = field(default_factory=list)
    shares: dict[str, int] = field(default_factory=dict)
    load_cold: str = ""
    load_steady: str = ""
    lock_held: float | None = None  # share of the cold pass with the write lock held
    lock_waiters: float | None = None  # daemons waiting for it, on average
    settled: float = 0.0  # s from the cold pass's end to the window
    backlog: int | None = None  # jobs > 5 s overdue as the window began


class Postgres:
    """Where the archives go, and how much CPU the server has used."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.con = psycopg.connect(url, autocommit=True)
        self.own = self.con.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.postmaster: int | None = None
        with contextlib.suppress(Exception):
            (data,) = self.con.execute("SHOW data_directory").fetchone()
            self.postmaster = int((Path(data) / "postmaster.pid").read_text().split()[0])
        self.version = self.con.execute("SHOW server_version").fetchone()[0]

    def cpu(self, skip: frozenset[int] = frozenset()) -> float:
        """The server's CPU so far, without the backends in `skip` (the benchmark's own)."""
        skip = skip | {self.own}
        if self.postmaster is not None:
            return tree_cpu(self.postmaster, skip)
        # A server whose data directory is not ours to read (--pg elsewhere on this machine):
        # every `postgres` process here, reaped backends not included.
        out = subprocess.run(["ps", "-C", "postgres", "-o", "pid="], capture_output=True, text=True)
        return sum(proc_cpu(int(p)) for p in out.stdout.split() if int(p) not in skip)

    @property
    def what(self) -> str:
        if self.postmaster is not None:
            return f"PostgreSQL {self.version}: the postmaster's process tree"
        return (
            f"PostgreSQL {self.version}: every `postgres` process on this machine (ps -C postgres)"
        )

    @contextlib.contextmanager
    def schema(self, name: str) -> Iterator[str]:
        """A new, empty schema: to the monitor, an empty database (the URL sets search_path)."""
        self.con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        self.con.execute(f'CREATE SCHEMA "{name}"')
        sep = "&" if "?" in self.url else "?"
        try:
            yield f"{self.url}{sep}options=-csearch_path%3D{name}"
        finally:
            self.con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


class LockSampler:
    """How often the archive's write lock is held, and how many wait for it, sampled every
    20 ms in a thread of its own (the lock every save takes: monitor/archive/postgres.py)."""

    def __init__(self, url: str) -> None:
        import psycopg

        from monitor.archive.postgres import WRITE_LOCK

        self.con = psycopg.connect(url, autocommit=True)
        self.pid: int = self.con.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.key = (WRITE_LOCK >> 32, WRITE_LOCK & 0xFFFFFFFF)
        self.samples = self.held = self.waiting = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(0.02):
            held, waiting = self.con.execute(
                "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) "
                "FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                self.key,
            ).fetchone()
            self.samples += 1
            self.held += held > 0
            self.waiting += waiting

    def stop(self) -> tuple[float, float]:
        """The share of samples with the lock held, and the mean number of waiters."""
        self.done.set()
        self.thread.join()
        self.con.close()
        n = max(self.samples, 1)
        return self.held / n, self.waiting / n


def prepare_queue(url: str) -> None:
    """Procrastinate's tables before the workers start (they then leave them be), and the
    trigger that notes when each job starts."""
    import psycopg
    from procrastinate.schema import SchemaManager

    with psycopg.connect(url, autocommit=True) as con:
        con.execute(SchemaManager.get_schema())
        con.execute(LATENESS_SQL)


def write_config(path: Path, database: str, urls: list[str], every: str) -> None:
    lines = [
        f'[monitor]\ndatabase = "{database}"\nevery = "{every}"\ntimeout = "30s"\n'
        'allow_private = true\nuser_agent = "outlet-monitor-bench/0.1"\n'
    ]
    lines += [f'[sources.s{i:05d}]\ntype = "feed"\nurl = "{u}"\n' for i, u in enumerate(urls)]
    path.write_text("\n".join(lines))


def with_password_from_env(url: str) -> tuple[str, dict[str, str]]:
    """The URL with its password as ${PGPASSWORD}, as a user writes it, and that variable."""
    parts = urlsplit(url)
    if not parts.password:
        return url, {}
    secret = unquote(parts.password)
    return url.replace(f":{parts.password}@", ":${PGPASSWORD}@", 1), {"PGPASSWORD": secret}


class Workers:
    def __init__(self, n: int, cfg: Path, work: Path, env: dict[str, str]) -> None:
        self.logs = [work / f"run{i}.log" for i in range(n)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
                env=env,
                cwd=work,
            )  # fmt: skip
            for log in self.logs
        ]

    def cpu(self) -> float:
        return sum(tree_cpu(p.pid) for p in self.procs)

    def check(self) -> None:
        for p, log in zip(self.procs, self.logs, strict=True):
            if p.poll() is not None:
                raise SystemExit(f"a worker exited {p.returncode}:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def wait_all_fetched(count: Callable[[], int], n: int, workers: Workers, timeout: float) -> float:
    deadline = time.time() + timeout
    while (got := count()) < n:
        workers.check()
        if time.time() > deadline:
            raise SystemExit(f"the cold pass did not end in {timeout:g}s: {got} of {n} fetched")
        time.sleep(0.2)
    return time.time()


def intervals(rows: list[tuple[str, str]], since: float, until: float) -> list[float]:
    """Seconds between consecutive fetch starts of a source, both within [since, until]."""
    import calendar

    last: dict[str, float] = {}
    out = []
    for sid, at in rows:
        t = float(calendar.timegm(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")))
        if since <= t <= until and sid in last and last[sid] >= since:
            out.append(t - last[sid])
        last[sid] = t
    return out


def run_pg(pg: Postgres, n: int, server: Server, args: argparse.Namespace, work: Path) -> Row:
    import psycopg

    row = Row(f"PostgreSQL, {n} worker{'s' * (n > 1)}", n)
    with pg.schema(f"scaleout_{n}") as url:
        prepare_queue(url)
        database, env_extra = with_password_from_env(url)
        cfg = work / f"pg{n}.toml"
        write_config(cfg, database, server.urls, args.every)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
        con = psycopg.connect(url, autocommit=True)
        ours = frozenset({con.execute("SELECT pg_backend_pid()").fetchone()[0]})

        def count() -> int:
            return con.execute("SELECT count(DISTINCT source_id) FROM fetches").fetchone()[0]

        def sql_cpu() -> float:
            return pg.cpu(ours)

        def overdue() -> int:
            return con.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' "
                "AND scheduled_at < now() - interval '5 seconds'"
            ).fetchone()[0]

        sampler = LockSampler(url)
        sampling = ours | {sampler.pid}  # its backend is left out while it lives
        pg0 = pg.cpu(sampling)
        t0 = time.time()
        workers = Workers(n, cfg, work, env)
        try:
            try:
                end = wait_all_fetched(
                    lambda: count() if _has_fetches(con) else 0, len(server.urls), workers,
                    args.cold_timeout,
                )  # fmt: skip
                row.cold_pg_cpu = pg.cpu(sampling) - pg0
            finally:
                row.lock_held, row.lock_waiters = sampler.stop()
            row.cold = end - t0
            row.cold_worker_cpu = workers.cpu()
            row.load_cold = load()
            (first,) = con.execute(
                "SELECT extract(epoch FROM min(started_at)) FROM bench_starts"
            ).fetchone()
            row.cold_rate = len(server.urls) / (end - float(first))
            since, until = steady(row, workers, server, args, end, sql_cpu, overdue)
            row.late = [
                float(x)
                for (x,) in con.execute(
                    "SELECT extract(epoch FROM started_at - scheduled_at) FROM bench_starts "
                    "WHERE started_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
                    (since, until),
                ).fetchall()
            ]
            fetches = con.execute(
                "SELECT source_id, started_at FROM fetches ORDER BY started_at, id"
            ).fetchall()
            row.intervals = intervals(fetches, since, until)
            row.shares = dict(
                con.execute(
                    "SELECT fetched_by, count(*) FROM sources GROUP BY 1 ORDER BY 1"
                ).fetchall()
            )
        finally:
            workers.stop()
            con.close()
    return row


def _has_fetches(con) -> bool:  # noqa: ANN001
    return con.execute("SELECT to_regclass('fetches') IS NOT NULL").fetchone()[0]


def steady(
    row: Row, workers: Workers, server: Server, args: argparse.Namespace, cold_end: float,
    sql_cpu: Callable[[], float] | None, overdue: Callable[[], int] | None = None,
) -> tuple[float, float]:  # fmt: skip
    """Wait an `every` after the cold pass, and on PostgreSQL until the jobs more than 5 s
    overdue are under 1% of the sources (a cold pass longer than `every` leaves a backlog;
    at most 5 `every`s), then measure --window seconds: when it was."""
    if args.cold_only:
        return cold_end, cold_end
    every = seconds(args.every)
    until = cold_end + every
    while (now := time.time()) < until or (
        overdue is not None and now < cold_end + 5 * every and overdue() > args.sources / 100
    ):
        workers.check()
        time.sleep(min(max(until - now, 1), 5))
    row.backlog = overdue() if overdue is not None else None
    row.settled = time.time() - cold_end
    before = server.stats()
    w0, p0, t0 = workers.cpu(), (sql_cpu() if sql_cpu else 0.0), time.time()
    while (left := t0 + args.window - time.time()) > 0:
        workers.check()
        time.sleep(min(left, 5))
    after = server.stats()
    w1, p1, t1 = workers.cpu(), (sql_cpu() if sql_cpu else 0.0), time.time()
    row.polls = after.get("304", 0) - before.get("304", 0)
    row.window = t1 - t0
    row.worker_cpu = w1 - w0
    row.pg_cpu = (p1 - p0) if sql_cpu else None
    row.load_steady = load()
    return t0, t1


def run_sqlite(server: Server, args: argparse.Namespace, work: Path) -> Row:
    row = Row("SQLite (default), 1 daemon", 1)
    db = work / "anchor.db"
    cfg = work / "sqlite.toml"
    write_config(cfg, str(db), server.urls, args.every)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def count() -> int:
        if not db.exists():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                return con.execute("SELECT count(DISTINCT source_id) FROM fetches").fetchone()[0]
        except sqlite3.OperationalError:  # not made yet, or busy for a moment
            return 0

    t0 = time.time()
    workers = Workers(1, cfg, work, env)
    try:
        end = wait_all_fetched(count, len(server.urls), workers, args.cold_timeout)
        row.cold = end - t0
        row.cold_worker_cpu = workers.cpu()
        row.load_cold = load()
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            (first,) = con.execute("SELECT min(started_at) FROM fetches").fetchone()
        import calendar

        first_t = float(calendar.timegm(time.strptime(first, "%Y-%m-%dT%H:%M:%SZ")))
        row.cold_rate = len(server.urls) / (end - first_t)  # to the second only
        since, until = steady(row, workers, server, args, end, None)
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            fetches = con.execute(
                "SELECT source_id, started_at FROM fetches ORDER BY started_at, rowid"
            ).fetchall()
        row.intervals = intervals(fetches, since, until)
    finally:
        workers.stop()
    return row


def report(rows: list[Row], args: argparse.Namespace, pg_what: str) -> None:
    every = seconds(args.every)
    n = args.sources
    print(f"\n{n} sources × {args.items} items on {n} loopback addresses; every {args.every}; "
          f"steady window {args.window:g}s; {os.cpu_count()} CPUs; {pg_what}")  # fmt: skip
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    head = (f"{'':<28} {'cold s':>7} {'cold/s':>7} {'×1':>5} {'polls/s':>8} "
            f"{'wkr µs/poll':>11} {'PG µs/poll':>10} {'late p50/p95/max s':>19} "
            f"{'interval p50/p95 s':>18} {'load cold':>14} {'load steady':>14}")  # fmt: skip
    print(head)
    print("-" * len(head))
    one = next((r for r in rows if r.workers == 1 and r.name.startswith("PostgreSQL")), None)
    for r in rows:
        ratio = f"{r.cold_rate / one.cold_rate:.2f}" if one and r.name.startswith("Post") else "-"
        pps = r.polls / r.window if r.window else 0
        wk = f"{r.worker_cpu / r.polls * 1e6:.0f}" if r.polls else "-"
        pgc = f"{r.pg_cpu / r.polls * 1e6:.0f}" if r.polls and r.pg_cpu is not None else "-"
        late = (f"{pct(r.late, 50):.2f}/{pct(r.late, 95):.2f}/{max(r.late):.1f}"
                if r.late else "-")  # fmt: skip
        gaps = f"{pct(r.intervals, 50):.0f}/{pct(r.intervals, 95):.0f}" if r.intervals else "-"
        print(f"{r.name:<28} {r.cold:>7.1f} {r.cold_rate:>7.0f} {ratio:>5} {pps:>8.1f} "
              f"{wk:>11} {pgc:>10} {late:>19} {gaps:>18} {r.load_cold:>14} {r.load_steady:>14}")  # fmt: skip
    print(f"\nsustainable steady load: {n / every:.1f} polls/s ({n} sources every {every:g}s)")
    for r in rows:
        pg = f", PostgreSQL {r.cold_pg_cpu:.1f}s" if r.cold_pg_cpu is not None else ""
        if r.lock_held is not None:
            pg += (f" (the write lock held {r.lock_held:.0%} of it, "
                   f"{r.lock_waiters:.2f} workers waiting on average)")  # fmt: skip
        print(
            f"{r.name}: cold CPU workers {r.cold_worker_cpu:.1f}s{pg}; steady "
            f"{r.polls} polls in {r.window:.0f}s, CPU workers {r.worker_cpu:.1f}s"
            + (f", PostgreSQL {r.pg_cpu:.1f}s" if r.pg_cpu is not None else "")
            + (f"; sources by worker {sorted(r.shares.values())}" if r.shares else "")
            + f"; the window began {r.settled:.0f}s after the cold pass"
            + (f", {r.backlog} jobs overdue by > 5 s" if r.backlog is not None else "")
        )
    two = next((r for r in rows if r.workers == 2 and r.name.startswith("Post")), None)
    if one and two:
        got = two.cold_rate / one.cold_rate
        print(f"\ntarget (reported, not asserted): two workers ≥ 1.7× one on the cold pass: "
              f"{got:.2f}× — {'met' if got >= 1.7 else 'NOT met'}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", type=int, default=5000)
    p.add_argument("--items", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--every", default="1m", help="the sources' `every` (default 1m)")
    p.add_argument("--window", type=float, default=120.0, help="steady-state seconds (120)")
    p.add_argument("--cold-timeout", type=float, default=900.0)
    p.add_argument("--cold-only", action="store_true", help="the cold pass only, no steady state")
    p.add_argument("--pg", help="an existing PostgreSQL database (default: a throwaway cluster)")
    p.add_argument("--no-sqlite", action="store_true", help="leave out the SQLite anchor")
    p.add_argument("--keep", type=Path, help="keep the configurations and logs here")
    args = p.parse_args()
    # SIGTERM unwinds like ^C: the workers, the origin and the throwaway cluster are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-scaleout-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"starting the origin ({args.sources} feeds × {args.items} items)...", flush=True)
    server = Server(args.sources, args.items, 0.0, 6 * 3600)
    rows: list[Row] = []
    try:
        with contextlib.ExitStack() as stack:
            if args.pg:
                base = args.pg
            else:
                from tests.pgserver import start_cluster

                cluster = stack.enter_context(start_cluster())
                base = cluster.url(cluster.create_db("scaleout"))
            pg = Postgres(base)
            stack.callback(pg.con.close)
            if not args.no_sqlite:
                print("SQLite anchor...", flush=True)
                rows.append(run_sqlite(server, args, work))
                print(f"  cold {rows[-1].cold:.1f}s", flush=True)
            for n in args.workers:
                print(f"PostgreSQL, {n} worker(s)...", flush=True)
                rows.append(run_pg(pg, n, server, args, work))
                print(f"  cold {rows[-1].cold:.1f}s", flush=True)
            report(rows, args, pg.what)
    finally:
        server.close()
    print(f"(configurations and logs in {work})")


if __name__ == "__main__":
    main()
