"""A throwaway PostgreSQL cluster for the tests: initdb in a temporary directory, on 127.0.0.1."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "monitor"
PASSWORD = "s3cret-for-tests"
SHARED = "monitor_tests"  # the database whose schemas the tests' archives are


def server_bin() -> Path | None:
    """Where `initdb` and `pg_ctl` are: Debian keeps them off PATH, in /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    host: str
    port: int
    _names = itertools.count(1)
    _shared: str | None = None

    def url(self, dbname: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{USER}:{password}@{self.host}:{self.port}/{dbname}"

    def admin(self):  # -> psycopg.Connection
        import psycopg

        return psycopg.connect(self.url(), autocommit=True)

    def create_db(self, prefix: str = "t") -> str:
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with self.admin() as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_db(self, name: str) -> None:
        with self.admin() as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, prefix: str = "t") -> Iterator[str]:
        """A new, empty archive for one test, dropped after it: its URL.

        A schema of its own in one shared database (the URL sets its search_path): to the
        monitor it is an empty database, and it costs a millisecond where CREATE DATABASE
        costs a second or two."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        import psycopg

        if self._shared is None:
            with self.admin() as con:
                con.execute(f'CREATE DATABASE "{SHARED}"')
            self._shared = SHARED

        with psycopg.connect(self.url(SHARED), autocommit=True) as con:
            con.execute(f'CREATE SCHEMA "{name}"')
        try:
            yield self.url(SHARED) + f"?options=-csearch_path%3D{name}"
        finally:
            with psycopg.connect(self.url(SHARED), autocommit=True) as con:
                con.execute(f'DROP SCHEMA "{name}" CASCADE')


@contextmanager
def start_cluster(keep: Path | None = None, settings: str = "") -> Iterator[PgServer]:
    """initdb + pg_ctl start in a new directory; stopped and removed on exit.

    The server refuses to run as root, so as root the cluster belongs to the `postgres` user
    that Debian's package makes. Durability is off: the data is thrown away at the end.
    With `keep` (the benchmarks' cache) the cluster lives in that directory: made there the
    first time, started again on the same data afterwards, stopped and kept on exit.
    `settings` are more server options (`-c shared_buffers=1GB`).
    """
    bindir = server_bin()
    if bindir is None:
        raise FileNotFoundError("initdb")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    if keep is None:
        top = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
    else:
        top = keep.resolve()
        top.mkdir(parents=True, exist_ok=True)
    data, sock = top / "data", top / "sock"
    sock.mkdir(exist_ok=True)
    pwfile = top / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if owner is not None:
        for path in (top, sock, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, cwd=top, timeout=120)

    try:
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)  # an initdb cut short
            run(str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                "--locale=C.UTF-8", "--no-sync")  # fmt: skip
        options = (
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 " + settings
        )
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(top / "log"),
            "-w", "-t", "60", "start")  # fmt: skip
        try:
            yield PgServer("127.0.0.1", port)
        finally:
            # A kept cluster is shut down cleanly (its next start needs no recovery).
            mode = "immediate" if keep is None else "fast"
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop")
    finally:
        if keep is None:
            shutil.rmtree(top, ignore_errors=True)
