"""Fault-suite fixtures: every hostile route, a tripwire, and a `monitor fetch` runner."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.faults import hostile as h
from tests.faults.hostile import Hostile, Tripwire


def install_routes(server: Hostile, other_port: int) -> None:
    """Every fault of the issue, plus the healthy feed that must be stored regardless."""

    async def http_date_503(conn: h.Conn) -> None:
        when = formatdate(time.time() + 300, usegmt=True)
        await h.status(503, when)(conn)

    async def garbage_body(conn: h.Conn) -> None:
        await conn.respond(200, bytes(range(256)) * 40, {"Content-Type": "application/rss+xml"})

    r = server.routes
    r["/healthy.xml"] = h.document(h.rss("Ceasefire talks resume", "Parliament votes"))
    r["/hang-after-headers"] = h.hang_after_headers
    r["/hang-before-headers"] = h.hang_before_headers
    r["/trickle"] = h.trickle
    for code in (404, 410, 500):
        r[f"/status/{code}"] = h.status(code)
    r["/status/429"] = h.status(429, "120")
    r["/status/503"] = h.status(503, "120")
    r["/status/503-date"] = http_date_503
    r["/status/429-forever"] = h.status(429, "999999999")
    r["/reset"] = h.reset
    r["/reset-mid-body"] = h.reset_mid_body
    r["/loop"] = h.redirect("/loop")
    r["/endless"] = h.endless
    r["/endless-gzip"] = h.endless_gzip
    r["/huge-declared"] = h.huge_declared
    r["/garbage"] = h.garbage
    r["/garbage-body"] = garbage_body
    r["/laughs.xml"] = h.document(h.LAUGHS)
    r["/laughs-sitemap.xml"] = h.document(h.SITEMAP_LAUGHS, "application/xml")
    r["/xxe.xml"] = h.document(h.XXE)
    r["/xxe-sitemap.xml"] = h.document(h.SITEMAP_XXE, "application/xml")
    r["/invalid-utf8.xml"] = h.document(h.INVALID_UTF8)
    r["/nested.xml"] = h.document(h.NESTED_XML)
    r["/nested.json"] = h.document(h.NESTED_JSON, "application/feed+json")
    r["/nested.html"] = h.document(h.NESTED_HTML, "text/html; charset=utf-8")
    r["/private-links.html"] = h.document(
        h.private_links_page(server.port), "text/html; charset=utf-8"
    )
    r["/secret"] = h.document(b"the monitor must never ask for this", "text/plain")
    # No <!ENTITY> in the document itself: the declarations would come from the external DTD.
    r["/evil.dtd"] = h.document(b'<!ENTITY x SYSTEM "file:///etc/passwd">', "application/xml-dtd")
    dtd = f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{server.url("/evil.dtd")}">'.encode()
    item = b"<item><title>&x; dtd</title><link>https://news.example/dtd</link>"
    r["/external-dtd.xml"] = h.document(
        dtd + b'<rss version="2.0"><channel>' + item + b"</item></channel></rss>"
    )
    r["/external-dtd-broken.xml"] = h.document(  # not well-formed: the lenient parser reads it
        dtd + b'<rss version="2.0"><channel>' + item + b"<b></item></channel></rss>"
    )
    r["/to-metadata"] = h.redirect("http://169.254.169.254/latest/meta-data/iam/")
    r["/to-mapped-metadata"] = h.redirect("http://[::ffff:a9fe:a9fe]/latest/meta-data/", 307)
    r["/to-private"] = h.redirect("http://10.0.0.1/admin", 301)
    r["/to-other-port"] = h.redirect(f"http://127.0.0.1:{other_port}/secret")
    r["/to-file"] = h.redirect("file:///etc/passwd")
    for n in range(1, 7):
        r[f"/hops/{n}"] = h.redirect(f"/hops/{n - 1}" if n > 1 else "/healthy.xml")


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tripwire]:
    wire = Tripwire()
    wire.install(monkeypatch)
    yield wire
    assert wire.attempts == [], f"something tried to leave loopback: {wire.attempts}"


@pytest.fixture(autouse=True)
def _no_traffic_off_loopback(tripwire: Tripwire) -> None:
    """Every fault test runs behind the tripwire, asked for or not."""


@pytest.fixture
def server() -> Iterator[Hostile]:
    with Hostile() as other, Hostile() as s:
        install_routes(s, other.port)
        other.routes["/secret"] = h.document(b"never", "text/plain")
        s.other = other  # type: ignore[attr-defined]
        yield s
    assert other.hits == [], "a redirect reached a different port on loopback"


# --- running `monitor fetch` ----------------------------------------------------------------


def source_toml(sid: str, kind: str, url: str, **extra: str) -> str:
    lines = [f"[sources.{sid}]", f'type = "{kind}"', f'url = "{url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def write_config(
    tmp: Path, sources: str, *, timeout: str = "1s", per_host: int = 64, every: str = "1h"
) -> Path:
    # per_host is raised so that the faulty sources, all on one loopback host, run at once and
    # the pass takes one deadline, not one per source; politeness has its own test.
    path = tmp / "monitor.toml"
    path.write_text(
        f'[monitor]\ndatabase = "{tmp / "monitor.db"}"\nevery = "{every}"\n'
        f'timeout = "{timeout}"\nmax_body = "1MB"\nper_host = {per_host}\n\n{sources}',
        encoding="utf-8",
    )
    return path


@dataclass
class Escapes:
    """What got out of a pass other than its output: log records with tracebacks, hooks."""

    logged: list[logging.LogRecord] = field(default_factory=list)
    unraisable: list[Any] = field(default_factory=list)
    thread_errors: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tracebacks() or self.unraisable or self.thread_errors)

    def tracebacks(self) -> list[str]:
        return [r.getMessage() for r in self.logged if r.exc_info or r.levelno >= logging.ERROR]


class _Collect(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@dataclass
class Pass:
    code: int
    out: str
    err: str
    seconds: float
    escapes: Escapes
    db_path: Path
    finished: float = field(default_factory=time.time)  # wall clock, to compare with the db
    hits: list[str] = field(default_factory=list)  # paths the servers saw, when a test keeps them
    wire: Tripwire | None = None

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.out)

    def result(self, sid: str) -> dict[str, Any]:
        return next(s for s in self.doc["sources"] if s["id"] == sid)

    def row(self, sid: str) -> dict[str, Any]:
        return query(self.db_path, "SELECT * FROM sources WHERE id = ?", sid)[0]

    def posts(self, sid: str) -> list[dict[str, Any]]:
        return query(self.db_path, "SELECT * FROM posts WHERE source_id = ? ORDER BY url", sid)


def query(db_path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, params)]
    finally:
        db.close()


def run_cli(config: Path, *args: str) -> Pass:
    """`monitor <args> --config <config>` in this process, watching for anything escaping."""
    escapes = Escapes()
    handler = _Collect(escapes.logged)
    root = logging.getLogger()
    old_unraisable, old_thread = sys.unraisablehook, threading.excepthook
    sys.unraisablehook = escapes.unraisable.append
    threading.excepthook = escapes.thread_errors.append
    root.addHandler(handler)
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*args, "--config", str(config)])
    finally:
        root.removeHandler(handler)
        sys.unraisablehook, threading.excepthook = old_unraisable, old_thread
    db_path = Path(str(config.parent / "monitor.db"))
    return Pass(code, out.getvalue(), err.getvalue(), time.monotonic() - started, escapes, db_path)


def fetch(config: Path, *args: str) -> Pass:
    return run_cli(config, "fetch", "--json", *args)
