"""I/O: the SQLite archive — schema, post versions, search index, fetch log, source state, outbox rows."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.archive.walcheckpoint import PAGES, Checkpoints
from monitor.errors import ArchiveError, archive_open_error
from monitor.models import Post
from monitor.text import fold

if TYPE_CHECKING:
    from monitor.query import Query

SCHEMA_VERSION = 12
# Segments of the search index merged at a time (FTS5's `automerge`; its default is 4).
FTS_AUTOMERGE = 8
log = logging.getLogger("monitor")
# The WAL is cut back to this after each checkpoint that empties it: a pass that wrote 60 MB
# of it, or a disk that filled up (no checkpoint could finish), must not keep its size.
WAL_LIMIT = 32 * 1024 * 1024
# An I/O error with less free space than this on the archive's disk is a full disk: SQLite
# says "disk I/O error" when the WAL index (the -shm file) cannot grow for want of space.
NEARLY_FULL = 4 * 1024 * 1024
# Columns added after version 1, for archives created before them: (table, column, declaration).
_ADDED_COLUMNS = [
    ("posts", "extra", "TEXT NOT NULL DEFAULT '{}'"),
    ("deliveries", "claimed_until", "TEXT"),
    ("sources", "notices", "TEXT"),
    ("deliveries", "batch", "TEXT"),
    ("sources", "last_new_at", "TEXT"),
    ("matches", "url", "TEXT"),
    ("sources", "failing_since", "TEXT"),
    ("sources", "fetched_by", "TEXT"),
    ("matches", "query", "TEXT"),
]
# What an added column starts as in an archive that had none.
_BACKFILLS = {
    "last_new_at": "UPDATE sources SET last_new_at = "
    "(SELECT max(first_seen_at) FROM posts p WHERE p.source_id = sources.id)",
    "url": "UPDATE matches SET url = (SELECT url FROM posts p WHERE p.id = matches.post_id)",
    # The first failure since the last success (interrupted fetches were never failures).
    "failing_since": "UPDATE sources SET failing_since = (SELECT min(f.started_at) FROM fetches f"
    " WHERE f.source_id = sources.id AND f.ok = 0 AND f.error IS NOT 'interrupted'"
    " AND f.started_at >= coalesce(sources.last_ok_at, '')) WHERE failures > 0",
}
# Indexes on added columns: made once the columns exist, in a new archive and an old one.
_LATE_INDEXES = [
    "CREATE INDEX IF NOT EXISTS matches_alert_url ON matches(alert_id, url)",
    # An episode's event goes once to each notifier, as a match does (post_id is NULL there).
    "CREATE UNIQUE INDEX IF NOT EXISTS deliveries_episode "
    "ON deliveries(episode_id, event, notifier) WHERE episode_id IS NOT NULL",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    url TEXT,
    last_fetched_at TEXT,
    last_ok_at TEXT,
    last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    notices TEXT,  -- what the last fetch had to say besides success or failure (JSON list)
    state TEXT NOT NULL DEFAULT '{}',
    last_new_at TEXT,  -- when a fetch last found a post not seen before
    failing_since TEXT,  -- when the current run of failures began; NULL while it succeeds
    fetched_by TEXT  -- the daemon (host:pid) that last fetched it; NULL for `monitor fetch`
);
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES sources(id),
    external_id TEXT NOT NULL,
    url TEXT,
    author TEXT,
    title TEXT,
    text TEXT,
    kind TEXT NOT NULL DEFAULT 'article',
    published_at TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    lang TEXT,
    media TEXT NOT NULL DEFAULT '[]',
    extra TEXT NOT NULL DEFAULT '{}',
    transcript TEXT,
    rev INTEGER NOT NULL UNIQUE,
    UNIQUE (source_id, external_id)
);
CREATE INDEX IF NOT EXISTS posts_published ON posts(published_at);
CREATE TABLE IF NOT EXISTS post_versions (
    post_id TEXT NOT NULL REFERENCES posts(id),
    version INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    title TEXT,
    text TEXT,
    PRIMARY KEY (post_id, version)
);
CREATE TABLE IF NOT EXISTS transcript_segments (
    post_id TEXT NOT NULL REFERENCES posts(id),
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transcript_segments_post ON transcript_segments(post_id, start);
CREATE VIRTUAL TABLE IF NOT EXISTS posts_fts USING fts5(
    title, text, transcript, author,
    content = '',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE IF NOT EXISTS matches (
    alert_id TEXT NOT NULL,
    post_id TEXT NOT NULL REFERENCES posts(id),
    matched_at TEXT NOT NULL,
    snippet TEXT,  -- NULL until shown, unless sent: made from `query` (monitor.snippet)
    "offset" REAL,
    url TEXT,  -- the post's link when it matched: one alert per link, whichever source has it
    query TEXT,  -- the alert's query when it matched, which a snippet made later is made of
    UNIQUE (alert_id, post_id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    alert_id TEXT NOT NULL,
    post_id TEXT REFERENCES posts(id),  -- NULL for a source-health event (episode_id)
    notifier TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    next_attempt_at TEXT,
    claimed_until TEXT,  -- a process is sending it: others keep off until then
    batch TEXT,  -- the digest message it went out in, by that message's id: fixed once tried
    payload TEXT NOT NULL,
    episode_id INTEGER REFERENCES source_episodes(id),  -- the source-health episode it tells of
    event TEXT,  -- for an episode: source_failing, source_silent or source_recovered
    reached TEXT,  -- targets a notifier with several already has it (JSON list), kept for retries
    UNIQUE (alert_id, post_id, notifier)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS fetches (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    ok INTEGER,
    http_status INTEGER,
    new INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS fetches_source ON fetches(source_id, started_at);
CREATE TABLE IF NOT EXISTS source_episodes (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    kind TEXT NOT NULL,  -- failing | silent
    since TEXT NOT NULL,  -- when the condition began: the first failure, the last new post
    opened_at TEXT NOT NULL,  -- when the alert fired
    closed_at TEXT,  -- when the source recovered; NULL while the episode lasts
    detail TEXT  -- the source's last error when it fired
);
CREATE UNIQUE INDEX IF NOT EXISTS source_episodes_open
    ON source_episodes(alert_id, source_id, kind) WHERE closed_at IS NULL;
CREATE TABLE IF NOT EXISTS search_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- Posts up to this rev are in posts_fts and the alerts have run on them; the ones above
    -- were saved since and wait for the next `index_pending` (by any process).
    indexed_rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS daemons (
    -- One row per `monitor run` process: its heartbeat, for `monitor health`.
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    roles TEXT NOT NULL,
    started_at TEXT NOT NULL,
    beat_at TEXT NOT NULL,
    stopped_at TEXT
);
"""


class ArchiveFull(ArchiveError, sqlite3.OperationalError):
    """A write failed because the archive's disk is full. Still an sqlite3 error, so that
    whatever handles a failed write handles it; `str()` says so in words."""


def _free_space(path: str) -> int | None:
    try:
        st = os.statvfs(Path(path).resolve().parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _size(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def disk_full(exc: BaseException, path: str) -> ArchiveFull | None:
    """`exc` as an ArchiveFull when it means the archive's disk is full, else None."""
    if isinstance(exc, ArchiveFull) or not isinstance(exc, sqlite3.Error) or path == ":memory:":
        return exc if isinstance(exc, ArchiveFull) else None
    name = getattr(exc, "sqlite_errorname", "") or ""
    free = _free_space(path)
    if name == "SQLITE_FULL":
        reason = f"{_size(free)} free" if free is not None and free < NEARLY_FULL else str(exc)
    elif name.startswith("SQLITE_IOERR") and free is not None and free < NEARLY_FULL:
        reason = f"{_size(free)} free; SQLite said: {exc}"
    else:
        return None
    full = ArchiveFull(f"cannot write to the archive {path}: the disk is full ({reason})")
    full.sqlite_errorcode, full.sqlite_errorname = getattr(exc, "sqlite_errorcode", 13), name
    return full


def _created(statement: str) -> str | None:
    """The table a CREATE TABLE statement of the schema makes."""
    m = re.match(r"CREATE (?:VIRTUAL )?TABLE IF NOT EXISTS (\w+)", statement)
    return m.group(1) if m else None


def _statements(script: str) -> list[str]:
    """The statements of a schema script, one by one (executescript would commit first)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return [s for s in out if s]


# json.dumps with options builds an encoder per call; these run twice for every post saved.
_to_json = json.JSONEncoder(ensure_ascii=False).encode
_extra_json = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _notices(notices: list[str] | None) -> str | None:
    return json.dumps(notices, ensure_ascii=False) if notices else None


def _words_changed(old: sqlite3.Row, post: Post) -> bool:
    """Whether a stored post's searchable words change with this version of it (a new rev)."""
    return (old["title"], old["text"], old["transcript"], old["author"]) != (
        post.title,
        post.text,
        post.transcript or old["transcript"],
        post.author,
    )


def _where_in(
    db: sqlite3.Connection, sql: str, values: list[Any], before: tuple[Any, ...] = ()
) -> Iterator[sqlite3.Row]:
    """`sql` with its `IN ({})` filled, a few hundred values at a time (SQLite caps parameters);
    `before` are the parameters that come before the list."""
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        yield from db.execute(sql.format(",".join("?" * len(chunk))), (*before, *chunk))


def now_iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def iso_to_epoch(value: str | None) -> float | None:
    if not value:
        return None
    import calendar

    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


def post_id(source_id: str, external_id: str) -> str:
    """Stable across fetches and machines: the same item of the same source, the same id."""
    digest = hashlib.sha256(f"{source_id}\x00{external_id}".encode()).hexdigest()
    return digest[:20]


def new_delivery_id() -> str:
    import uuid  # here: with platform, a few ms of every start-up, for the outbox alone

    return "msg_" + uuid.uuid4().hex


@dataclass
class SaveResult:
    new: int = 0
    updated: int = 0
    rev_lo: int | None = None  # revisions this save gave to new or changed posts
    rev_hi: int | None = None
    # Changed posts this save took out of the search index: the transaction must index them
    # again (match_pending) before it commits, or a search would miss them in between.
    unindexed: int = 0
    # Stored posts this save left as they were because a newer fetch had saved them (an older
    # answer, saved last): their content here is not news but the past.
    stale: int = 0


_FTS_COLUMNS = ("title", "text", "transcript", "author")
# What the search index holds of a post: (rev, title, text, transcript, author), unfolded.
_Doc = tuple[int, str | None, str | None, str | None, str | None]


class Store:
    """The archive on SQLite. One connection per process; writes are short IMMEDIATE transactions.

    The other backend (monitor.archive.postgres) is a subclass: it runs the same SQL through a
    connection that speaks PostgreSQL, and replaces what is SQLite's own: opening and the
    schema (`_open`, `_migrate`), `transaction`, and the search index (`_index`, `_unindex`,
    `_clear_pass`, `_clear_index`, `matching_revs`, `search_rows`, `search_count`,
    `search_counted`).
    """

    # What a failure of the database itself raises (the daemon retries, a pass reports it).
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    shared = False  # one process's file: the daemon schedules every source itself
    fetched_by: str | None = None  # the daemon fetching through this store, for `sources`

    # The alerts get their own index of a batch once the archive holds this many times more.
    # Below that they query the archive's index: at most that many times the batch, a few
    # ms for ten alerts, against indexing every post of the batch twice. Flat it stays.
    PASS_INDEX_ABOVE = 10
    # The WAL's checkpoints, on a thread of their own (monitor.archive.walcheckpoint); None
    # where SQLite makes its own (no WAL: an archive in memory) and for PostgreSQL.
    _checkpoints: Checkpoints | None = None

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 30.0, create: bool = True
    ) -> None:
        """Open (with `create`, make) the archive; ArchiveError when that fails."""
        self.path = str(path)
        if not create and self.path != ":memory:" and not Path(self.path).exists():
            raise ArchiveError(
                f"no archive at {self.path} (`monitor fetch` or `monitor run` makes it)"
            )
        try:
            self._open(busy_timeout)
        except (sqlite3.Error, OSError, ArchiveError) as e:
            with contextlib.suppress(AttributeError, sqlite3.Error):
                self.db.close()
            if isinstance(e, ArchiveError):
                raise
            full = disk_full(e, self.path)
            raise full or archive_open_error(self.path, e) from None

    def _open(self, busy_timeout: float) -> None:
        # What this connection saved above the search mark, by rev, as the index wants it:
        # index_pending takes it from here rather than read it back. Emptied by any
        # rollback, which may have undone the saves (and their revs go to other posts).
        self._fresh: dict[int, _Doc] = {}
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly by `transaction()` so that
        # every write takes the lock up front (BEGIN IMMEDIATE) instead of upgrading mid-way.
        self.db = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            # Made by a newer outlet-monitor: its tables may mean what this one cannot know,
            # and a write by this one (even switching it to WAL) could corrupt them.
            raise ArchiveError(
                f"the archive {self.path} has schema version {version}, newer than this "
                f"outlet-monitor's {SCHEMA_VERSION}: upgrade outlet-monitor to use it "
                "(the archive was left untouched)"
            )
        if self.path != ":memory:":
            (mode,) = self.db.execute("PRAGMA journal_mode = WAL").fetchone()
            self.db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
            if mode == "wal":
                self.db.execute("PRAGMA wal_autocheckpoint = 0")
                self._checkpoints = Checkpoints(self.path)
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        self._migrate()
        # This connection's own index of the posts a save touched (see `pass_index`): alerts
        # run on it, so matching costs the same on a small archive and a huge one.
        self.db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.pass_fts USING fts5("
            "title, text, transcript, author, content = '', "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
        self.db.close()  # the last connection to close checkpoints what is left

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version >= SCHEMA_VERSION:
            self._repair()
            return
        # One transaction, the version read again inside it: two processes starting on the same
        # file can't both create or both alter it. CREATE ... IF NOT EXISTS brings a new file to
        # the current schema; the columns later versions added are added to an older one.
        # Off while a table is rebuilt (SQLite's own procedure for it), so that an old archive
        # with a delivery whose post is gone still opens; back on whatever happens.
        self.db.execute("PRAGMA foreign_keys = OFF")
        try:
            self._upgrade()
        finally:
            self.db.execute("PRAGMA foreign_keys = ON")

    def _upgrade(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self.db.execute("PRAGMA user_version").fetchone()
            if version < SCHEMA_VERSION:
                for statement in _statements(SCHEMA):
                    self.db.execute(statement)
                # Before version 6 a post was indexed and matched as it was saved: all of them are.
                self.db.execute(
                    "INSERT OR IGNORE INTO search_state (id, indexed_rev) "
                    "SELECT 1, coalesce(max(rev), 0) FROM posts"
                )
                for table, column, decl in _ADDED_COLUMNS:
                    have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
                    if column not in have:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                        if column in _BACKFILLS:
                            self.db.execute(_BACKFILLS[column])
                self._rebuild_deliveries()
                for statement in _LATE_INDEXES:
                    self.db.execute(statement)
                (fts_sql,) = self.db.execute(
                    "SELECT sql FROM sqlite_master WHERE name = 'posts_fts'"
                ).fetchone()
                if "content = 'posts'" in fts_sql:
                    # Version 3 and before: an external-content index over `posts`. It holds
                    # folded text, so an integrity check comparing it with `posts` (PRAGMA
                    # integrity_check does, from SQLite 3.44) would call it corrupt.
                    self.db.execute("DROP TABLE posts_fts")
                    self.db.execute(
                        next(x for x in _statements(SCHEMA) if "TABLE IF NOT EXISTS posts_fts" in x)
                    )
                    self._reindex(self.db)
                # Eight segments merged at a time, not four: a cold pass of 6,000 posts spent
                # 4% less CPU in the fetching process (bench/README.md, session 6), and
                # searches of 100,000 posts took no longer. The index keeps the setting: an
                # archive gets it when it is made or upgraded.
                self.db.execute(
                    f"INSERT INTO posts_fts (posts_fts, rank) VALUES ('automerge', {FTS_AUTOMERGE})"
                )
                if version:
                    # Before version 5 a fetch was logged when it started; a killed process
                    # left its row open. Rows are now written whole, when a fetch ends.
                    self.db.execute(
                        "UPDATE fetches SET finished_at = started_at, ok = 0, "
                        "error = 'interrupted' WHERE finished_at IS NULL"
                    )
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _rebuild_deliveries(self) -> None:
        """Version 9: `deliveries.post_id` may be NULL (a source-health event has no post).

        SQLite cannot drop a NOT NULL, so a table from before is copied into the new shape.
        Nothing references `deliveries`, so it can be replaced inside the migration's
        transaction with foreign keys on.
        """
        have = [r[1] for r in self.db.execute("PRAGMA table_info(deliveries)")]
        if "episode_id" in have:
            return
        create = next(x for x in _statements(SCHEMA) if "TABLE IF NOT EXISTS deliveries" in x)
        self.db.execute(create.replace("IF NOT EXISTS deliveries", "deliveries_v9", 1))
        cols = ", ".join(f'"{c}"' for c in have)
        self.db.execute(f"INSERT INTO deliveries_v9 ({cols}) SELECT {cols} FROM deliveries")
        self.db.execute("DROP TABLE deliveries")
        self.db.execute("ALTER TABLE deliveries_v9 RENAME TO deliveries")
        self.db.execute(
            next(x for x in _statements(SCHEMA) if "INDEX IF NOT EXISTS deliveries_" in x)
        )

    def _repair(self) -> None:
        """Bring back what a current archive must hold and can be rebuilt; refuse the rest."""
        have = {
            r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        missing = [
            name
            for name in (_created(x) for x in _statements(SCHEMA))
            if name is not None and name not in have
        ]
        if not missing:
            return
        if missing != ["search_state"]:
            raise ArchiveError(
                f"the archive {self.path} is damaged: it lacks {', '.join(missing)} "
                "(restore it from a backup)"
            )
        # Which posts were indexed and matched went with it: all of them are taken as done,
        # as a migration does (no alert sent twice), and the index is made again from the
        # posts so that search misses none. Said, since some alerts may have been skipped.
        log.warning(
            "%s: the search_state table was missing; made again, and the search index "
            "rebuilt (posts saved but not yet matched are taken as matched)",
            self.path,
        )
        with self.transaction() as db:
            db.execute(next(x for x in _statements(SCHEMA) if _created(x) == "search_state"))
            db.execute(
                "INSERT INTO search_state (id, indexed_rev) SELECT 1, coalesce(max(rev), 0) "
                "FROM posts"
            )
            db.execute("INSERT INTO posts_fts (posts_fts) VALUES ('delete-all')")
            self._reindex(db)

    @contextmanager
    def transaction(self, ordered: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction. `ordered` is for PostgreSQL (see there): a file has one writer."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException as exc:
            self._rollback()
            full = disk_full(exc, self.path)
            if full is not None and full is not exc:
                raise full from exc
            raise
        try:
            self.db.execute("COMMIT")
        except BaseException as exc:
            # A COMMIT that fails (a full disk, a deferred constraint) can leave the
            # transaction open: every later BEGIN on this connection would fail too.
            self._rollback()
            full = disk_full(exc, self.path)
            if full is not None:
                raise full from exc
            raise
        if self._checkpoints is not None and not self._checkpoints.written():
            self.db.execute(f"PRAGMA wal_autocheckpoint = {PAGES}")  # SQLite's own, as before
            self._checkpoints = None

    def checkpoint(self) -> None:
        """Copy the WAL into the archive and cut it to nothing (after a full disk, say)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def _rollback(self) -> None:
        self._fresh.clear()
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # -- sources -------------------------------------------------------------------------

    def sync_sources(self, sources: Iterable[tuple[str, str, str | None]]) -> None:
        """Make sure each configured (id, type, url) has a row; state of known ones is kept."""
        with self.transaction() as db:
            for sid, type_name, url in sources:
                db.execute(
                    "INSERT INTO sources (id, type, url) VALUES (?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET type = excluded.type, url = excluded.url "
                    # Unchanged, not rewritten: a command or daemon starting on a full disk
                    # starts (reading works), rather than fail on a write of nothing new.
                    "WHERE sources.type IS NOT excluded.type OR sources.url IS NOT excluded.url",
                    (sid, type_name, url),
                )

    def source(self, source_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM sources WHERE id = ?", (source_id,)).fetchone()

    def source_state(self, source_id: str) -> dict[str, Any]:
        """The source's state (validators, cursors), read afresh: the caller's to change."""
        row = self.db.execute("SELECT state FROM sources WHERE id = ?", (source_id,)).fetchone()
        return _state(row[0] if row is not None else None)

    def pending_deliveries(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'"
        ).fetchone()[0]

    def has_source(self, source_id: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM sources WHERE id = ?", (source_id,)).fetchone()
            is not None
        )

    def source_rows(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT s.*, (SELECT count(*) FROM posts p WHERE p.source_id = s.id) AS posts "
            "FROM sources s ORDER BY s.id"
        ).fetchall()

    # -- fetch log -----------------------------------------------------------------------

    def fetch_start(self, source_id: str) -> tuple[int, dict[str, Any]]:
        """As a fetch begins: the newest fetch row (to know what was logged since) and the
        source's state (as `source_state`), in one statement, as every poll needs both."""
        row = self.db.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM fetches), "
            "(SELECT state FROM sources WHERE id = ?)",
            (source_id,),
        ).fetchone()
        return row[0], _state(row[1])

    @staticmethod
    def newer_fetch_saved(
        db: sqlite3.Connection, source_id: str, started_at: str, after_id: int
    ) -> bool:
        """Whether a fetch of this source that started no earlier than `started_at` (to the
        second, so a tie counts) has saved since fetch row `after_id`: another process's."""
        row = db.execute(
            "SELECT 1 FROM fetches WHERE source_id = ? AND id > ? AND ok = 1 AND started_at >= ?"
            " LIMIT 1",
            (source_id, after_id, started_at),
        ).fetchone()
        return row is not None

    def finish_fetch_failed(
        self,
        db: sqlite3.Connection,
        source_id: str,
        started_at: str,
        error: str,
        http_status: int | None,
        next_attempt_at: str | None,
        notices: list[str] | None = None,
    ) -> None:
        """Log a failed fetch (one row, written when it ends) and count the failure."""
        finished = now_iso()
        db.execute(
            "INSERT INTO fetches (source_id, started_at, finished_at, ok, http_status, error) "
            "VALUES (?, ?, ?, 0, ?, ?)",
            (source_id, started_at, finished, http_status, error),
        )
        db.execute(
            "UPDATE sources SET last_fetched_at = ?, last_error = ?, failures = failures + 1, "
            "next_attempt_at = ?, notices = ?, failing_since = coalesce(failing_since, ?), "
            "fetched_by = ? WHERE id = ?",
            (started_at, error, next_attempt_at, _notices(notices), started_at, self.fetched_by,
             source_id),
        )  # fmt: skip

    def finish_fetch_ok(
        self,
        db: sqlite3.Connection,
        source_id: str,
        started_at: str,
        http_status: int | None,
        result: SaveResult,
        state: dict[str, Any] | None,
        notices: list[str] | None = None,
    ) -> None:
        """Log a fetch that worked, in the transaction that saved its posts.

        With `state` None, a newer fetch has saved since this one began: its validators and
        cursors, and its start as the source's last fetch, are kept.
        """
        finished = now_iso()
        db.execute(
            "INSERT INTO fetches (source_id, started_at, finished_at, ok, http_status, new, "
            "updated) VALUES (?, ?, ?, 1, ?, ?, ?)",
            (source_id, started_at, finished, http_status, result.new, result.updated),
        )
        older = state is None
        db.execute(
            "UPDATE sources SET last_fetched_at = CASE WHEN ? THEN "
            "max(coalesce(last_fetched_at, ''), ?) ELSE ? END, last_ok_at = ?, "
            "last_error = NULL, failures = 0, next_attempt_at = NULL, state = coalesce(?, state), "
            "notices = ?, failing_since = NULL, fetched_by = ?, "
            "last_new_at = CASE WHEN ? THEN ? ELSE last_new_at END WHERE id = ?",
            (older, started_at, started_at, finished,
             None if older else json.dumps(state, ensure_ascii=False), _notices(notices),
             self.fetched_by, result.new > 0, finished, source_id),
        )  # fmt: skip

    def add_notices(self, db: sqlite3.Connection, source_id: str, notices: list[str]) -> None:
        """Add to what the source's last fetch has to say (the alerts ran after it was logged)."""
        row = db.execute("SELECT notices FROM sources WHERE id = ?", (source_id,)).fetchone()
        if row is None or not notices:
            return
        had = json.loads(row[0]) if row[0] else []
        db.execute(
            "UPDATE sources SET notices = ? WHERE id = ?", (_notices(had + notices), source_id)
        )

    def log_interrupted(self, source_id: str, started_at: str) -> None:
        """A fetch abandoned at shutdown says so in the log, and as the source's last error
        (its schedule and failure count are unchanged: it was stopped, it did not fail)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO fetches (source_id, started_at, finished_at, ok, error) "
                "VALUES (?, ?, ?, 0, 'interrupted')",
                (source_id, started_at, now_iso()),
            )
            db.execute("UPDATE sources SET last_error = 'interrupted' WHERE id = ?", (source_id,))

    # -- posts ---------------------------------------------------------------------------

    def save_posts(
        self,
        db: sqlite3.Connection,
        source_id: str,
        posts: Iterable[Post],
        *,
        older_than: str | None = None,
    ) -> SaveResult:
        """Insert new posts, version changed ones, leave unchanged ones untouched.

        Runs inside the caller's transaction. New and changed posts get a rev above the search
        mark: `index_pending` indexes them, and the alerts run on them, in a later step (in the
        same transaction for the daemon, once per pass for `monitor fetch`).

        `older_than` is the start of this fetch when a newer fetch of the source has saved
        since it began: a stored post written since then is left as it is (counted in
        `stale`), as that newer answer had it, rather than taken back to this older one.
        """
        result = SaveResult()
        posts = list(posts)
        if not posts:
            return result  # a 304, or an empty feed: nothing to read or write
        seen_at = now_iso()
        unique: dict[str, Post] = {}
        for post in posts:
            # The same item twice in one response: the first one wins.
            unique.setdefault(post_id(source_id, post.external_id), post)
        known = self._known(db, list(unique))
        self._adopt_former_ids(db, source_id, unique, known)
        # The posts that take a new rev: new ones, and those whose searchable words change.
        rewords = {
            pid
            for pid, post in unique.items()
            if pid not in known or _words_changed(known[pid], post)
        }
        revs, indexed = self._new_revs(db, len(rewords)) if rewords else (iter(()), 0)
        used: list[int] = []
        fresh = self._fresh
        new_posts: list[tuple[Any, ...]] = []
        new_versions: list[tuple[Any, ...]] = []
        new_segments: list[tuple[str, Post]] = []
        for pid, post in unique.items():
            old = known.get(pid)
            media = _to_json([m.to_dict() for m in post.media]) if post.media else "[]"
            extra = _extra_json(post.extra) if post.extra else "{}"
            if old is None:
                rev = next(revs)
                new_posts.append(
                    (pid, source_id, post.external_id, post.url, post.author, post.title,
                     post.text, post.kind, post.published_at, seen_at, seen_at, post.lang, media,
                     extra, post.transcript, rev)
                )  # fmt: skip
                new_versions.append((pid, seen_at, post.title, post.text))
                fresh[rev] = (rev, post.title, post.text, post.transcript, post.author)
                if post.segments:
                    new_segments.append((pid, post))
                used.append(rev)
                result.new += 1
                continue
            content_changed = (old["title"], old["text"]) != (post.title, post.text)
            index_changed = pid in rewords
            meta_changed = (
                old["url"],
                old["published_at"],
                old["lang"],
                old["media"],
                old["kind"],
            ) != (post.url, post.published_at or old["published_at"], post.lang, media, post.kind)
            if not (index_changed or meta_changed):
                continue
            if older_than is not None and old["updated_at"] >= older_than:
                # Saved (to the second) since this fetch began: by the newer one. Written before
                # this fetch began, it is older than this answer, which is saved as usual.
                result.stale += 1
                continue
            transcript = post.transcript or old["transcript"]
            version = old["version"] + 1 if content_changed else old["version"]
            rev = old["rev"]
            if index_changed:
                if old["rev"] <= indexed:
                    # Above the mark it was never indexed (changed again before its turn).
                    self._unindex(db, old)
                    result.unindexed += 1
                rev = next(revs)
                used.append(rev)
            db.execute(
                "UPDATE posts SET url = ?, author = ?, title = ?, text = ?, kind = ?, "
                "published_at = coalesce(?, published_at), updated_at = ?, version = ?, lang = ?,"
                " media = ?, extra = ?, transcript = ?, rev = ? WHERE id = ?",
                (post.url, post.author, post.title, post.text, post.kind, post.published_at,
                 seen_at, version, post.lang, media, extra, transcript, rev, pid),
            )  # fmt: skip
            if content_changed:
                db.execute(
                    "INSERT INTO post_versions (post_id, version, seen_at, title, text) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (pid, version, seen_at, post.title, post.text),
                )
            if index_changed:
                fresh[rev] = (rev, post.title, post.text, transcript, post.author)
                result.updated += 1
            if post.segments:
                db.execute("DELETE FROM transcript_segments WHERE post_id = ?", (pid,))
                self._save_segments(db, pid, post)
        if new_posts:
            db.executemany(
                "INSERT INTO posts (id, source_id, external_id, url, author, title, text, kind,"
                " published_at, first_seen_at, updated_at, version, lang, media, extra,"
                " transcript, rev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                new_posts,
            )
            db.executemany(
                "INSERT INTO post_versions (post_id, version, seen_at, title, text) "
                "VALUES (?, 1, ?, ?, ?)",
                new_versions,
            )
            for pid, post in new_segments:
                self._save_segments(db, pid, post)
        if used:
            result.rev_lo, result.rev_hi = min(used), max(used)
        return result

    def _new_revs(self, db: sqlite3.Connection, n: int) -> tuple[Iterator[int], int]:
        """`n` revisions for new and changed posts, above every stored one, and the search
        mark: the revs at or below it are in the search index. One writer at a time (the
        file's lock) makes max + 1 unique, and the order they commit in."""
        top, indexed = db.execute(
            "SELECT coalesce(max(rev), 0), (SELECT indexed_rev FROM search_state) FROM posts"
        ).fetchone()
        return iter(range(top + 1, top + 1 + n)), indexed

    def _adopt_former_ids(
        self,
        db: sqlite3.Connection,
        source_id: str,
        unique: dict[str, Post],
        known: dict[str, sqlite3.Row],
    ) -> None:
        """Key a post the archive holds under one of its `former_ids` by that stored row.

        A feed read by feedparser once had `<guid>1000</guid>` stored as
        `https://host/feeds/1000`; both parsers now give `1000`. Matched by the id the
        archive holds, the item updates its post rather than being archived (and alerted
        on) a second time. No migration: which stored ids were resolved guids is known only
        to the parser that reads the feed again.
        """
        wanted = {
            post_id(source_id, former): pid
            for pid, post in unique.items()
            if post.former_ids and pid not in known
            for former in post.former_ids
        }
        if not wanted:
            return
        for former_pid, row in self._known(db, list(wanted)).items():
            pid = wanted[former_pid]
            if pid in unique and former_pid not in unique:
                unique[former_pid] = unique.pop(pid)
                known[former_pid] = row

    @staticmethod
    def _known(db: sqlite3.Connection, pids: list[str]) -> dict[str, sqlite3.Row]:
        """The stored rows of these post ids, in one query per few hundred."""
        sql = (
            "SELECT id, rev, version, title, text, transcript, author, url, published_at, "
            "lang, media, extra, kind, updated_at FROM posts WHERE id IN ({})"
        )
        return {row["id"]: row for row in _where_in(db, sql, pids)}

    @staticmethod
    def _save_segments(db: sqlite3.Connection, pid: str, post: Post) -> None:
        if post.segments:
            db.executemany(
                'INSERT INTO transcript_segments (post_id, start, "end", text) VALUES (?, ?, ?, ?)',
                [(pid, s.start, s.end, s.text) for s in post.segments],
            )

    @staticmethod
    def _index(db: sqlite3.Connection, docs: list[_Doc], this_pass: bool = False) -> None:
        # The index holds folded text (posts keeps the original; the index is contentless and
        # its rowid is posts.rev), so that search is case- and accent-blind in every script,
        # beyond what unicode61 folds by itself.
        rows = [(d[0], fold(d[1]), fold(d[2]), fold(d[3]), fold(d[4])) for d in docs]
        for table in ("posts_fts", "pass_fts") if this_pass else ("posts_fts",):
            db.executemany(
                f"INSERT INTO {table} (rowid, title, text, transcript, author) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    @staticmethod
    def _unindex(db: sqlite3.Connection, old: sqlite3.Row) -> None:
        # A contentless FTS5 row is removed by repeating exactly what was indexed.
        db.execute(
            "INSERT INTO posts_fts (posts_fts, rowid, title, text, transcript, author) "
            "VALUES ('delete', ?, ?, ?, ?, ?)",
            (old["rev"], *(fold(old[c]) for c in _FTS_COLUMNS)),
        )

    def index_pending(self, db: sqlite3.Connection) -> tuple[str, int] | None:
        """Index the posts saved above the search mark, by this process or another, and move it.

        Returns None when nothing was pending, else where the alerts find just those posts in
        the same transaction: an FTS5 table and the old mark, above which its rowids are
        theirs. The table is `pass_fts`, this connection's temporary index of them, or the
        archive's own `posts_fts` when they are most of it (a first pass), rather than index
        them twice.
        """
        (indexed,) = db.execute("SELECT indexed_rev FROM search_state").fetchone()
        revs = [
            r[0] for r in db.execute("SELECT rev FROM posts WHERE rev > ? ORDER BY rev", (indexed,))
        ]
        if not revs:
            # Nothing to index (a 304, most of a daemon's polls): the last batch's pass index
            # is left for the next batch to clear, rather than cleared for nothing each time.
            return None
        self._clear_pass(db)
        top = revs[-1]
        fresh = self._fresh
        docs = [fresh[rev] for rev in revs if rev in fresh]
        fresh.clear()  # the rest were changed again since (their revs are gone) or indexed
        if len(docs) < len(revs):  # saved by another process, or before a restart
            have = {d[0] for d in docs}
            sql = "SELECT rev, title, text, transcript, author FROM posts WHERE rev IN ({})"
            docs += [tuple(r) for r in _where_in(db, sql, [r for r in revs if r not in have])]
        # Revisions, not posts, so no count of the archive: the pending ones are at most
        # top - indexed, and the archive's index holds at least `indexed` of them.
        own = self.PASS_INDEX_ABOVE * (top - indexed) <= indexed
        # The mark first: a statement after the inserts would make FTS5 write out its pending
        # terms (and do merge work) there and then, rather than once, at the commit.
        db.execute("UPDATE search_state SET indexed_rev = ?", (top,))
        self._index(db, docs, this_pass=own)
        return ("pass_fts" if own else "posts_fts"), indexed

    def posts_by_rev(self, db: sqlite3.Connection, revs: list[int]) -> list[sqlite3.Row]:
        return list(_where_in(db, "SELECT * FROM posts WHERE rev IN ({}) ORDER BY rev", revs))

    def segments(self, db: sqlite3.Connection, pid: str) -> list[tuple[float, str]]:
        return [
            (r[0], r[1])
            for r in db.execute(
                "SELECT start, text FROM transcript_segments WHERE post_id = ? ORDER BY start",
                (pid,),
            )
        ]

    def rebuild_index(self) -> None:
        """Re-create the search index from the posts table (after a change to `fold`)."""
        with self.transaction() as db:
            self._clear_index(db)
            self._reindex(db)

    @staticmethod
    def _clear_pass(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO pass_fts (pass_fts) VALUES ('delete-all')")

    @staticmethod
    def _clear_index(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO posts_fts (posts_fts) VALUES ('delete-all')")

    def matching_revs(
        self, db: sqlite3.Connection, table: str, query: Query, mark: int
    ) -> list[int]:
        """The revs above `mark` in the index `table` (see `index_pending`) that match `query`."""
        return [
            r[0]
            for r in db.execute(
                f"SELECT rowid FROM {table} WHERE {table} MATCH ? AND rowid > ?",
                (query.fts(), mark),
            )
        ]

    def search_rows(
        self, query: Query, source: str | None, since: str | None, limit: int
    ) -> list[sqlite3.Row]:
        """The posts matching `query`, best first: title counts most, then text, then author."""
        where, params = self._search_where(query, source, since)
        sql = f"SELECT p.* {where}"
        sql += " ORDER BY bm25(posts_fts, 4.0, 1.0, 1.0, 0.5), p.published_at DESC LIMIT ?"
        return self.db.execute(sql, [*params, limit]).fetchall()

    def search_counted(
        self, query: Query, source: str | None, since: str | None, limit: int
    ) -> tuple[list[Any], int]:
        """search_rows, and how many posts match in all (counted only when `limit` were
        found: fewer are all)."""
        rows = self.search_rows(query, source, since, limit)
        if len(rows) < limit:
            return rows, len(rows)
        return rows, self.search_count(query, source, since)

    def search_count(self, query: Query, source: str | None, since: str | None) -> int:
        where, params = self._search_where(query, source, since)
        (n,) = self.db.execute(f"SELECT count(*) {where}", params).fetchone()
        return int(n)

    @staticmethod
    def _search_where(query: Query, source: str | None, since: str | None) -> tuple[str, list[Any]]:
        sql = "FROM posts_fts JOIN posts p ON p.rev = posts_fts.rowid WHERE posts_fts MATCH ?"
        params: list[Any] = [query.fts()]
        if source:
            sql += " AND p.source_id = ?"
            params.append(source)
        if since:
            sql += " AND coalesce(p.published_at, p.first_seen_at) >= ?"
            params.append(since)
        return sql, params

    def _reindex(self, db: sqlite3.Connection) -> None:
        # Only up to the mark: the posts above it are indexed, and matched, in their turn.
        rows = db.execute(
            "SELECT rev, title, text, transcript, author FROM posts "
            "WHERE rev <= (SELECT indexed_rev FROM search_state)"
        ).fetchall()
        self._index(db, [tuple(r) for r in rows])

    # -- matches and outbox --------------------------------------------------------------

    def add_match(
        self,
        db: sqlite3.Connection,
        alert_id: str,
        pid: str,
        snippet: str,
        offset: float | None,
        notifiers: list[str],
        payload: dict[str, Any],
        url: str | None = None,
    ) -> bool:
        """Record a match and its deliveries; False when this alert already matched this post."""
        cur = db.execute(
            'INSERT OR IGNORE INTO matches (alert_id, post_id, matched_at, snippet, "offset", url)'
            " VALUES (?, ?, ?, ?, ?, ?)",
            (alert_id, pid, now_iso(), snippet, offset, url),
        )
        if cur.rowcount == 0:
            return False
        body = json.dumps(payload, ensure_ascii=False)
        created = now_iso()
        for notifier in notifiers:
            db.execute(
                "INSERT OR IGNORE INTO deliveries (id, alert_id, post_id, notifier, status, "
                "created_at, next_attempt_at, payload) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                (new_delivery_id(), alert_id, pid, notifier, created, created, body),
            )
        return True

    # -- source health -------------------------------------------------------------------

    def open_episodes(self, db: sqlite3.Connection, alert_id: str) -> list[sqlite3.Row]:
        return db.execute(
            "SELECT * FROM source_episodes WHERE alert_id = ? AND closed_at IS NULL", (alert_id,)
        ).fetchall()

    def open_episode(
        self,
        db: sqlite3.Connection,
        alert_id: str,
        source_id: str,
        kind: str,
        since: str,
        detail: str | None,
        notifiers: list[str],
        payload: dict[str, Any],
    ) -> int:
        """Record that a source is failing or silent for this alert, and queue its message."""
        cur = db.execute(
            "INSERT INTO source_episodes (alert_id, source_id, kind, since, opened_at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (alert_id, source_id, kind, since, now_iso(), detail),
        )
        episode = int(cur.lastrowid or 0)
        self._enqueue_event(db, alert_id, episode, f"source_{kind}", notifiers, payload)
        return episode

    def close_episode(
        self, db: sqlite3.Connection, episode: sqlite3.Row, notifiers: list[str],
        payload: dict[str, Any],
    ) -> None:  # fmt: skip
        """The source recovered: the episode ends, and its message is queued."""
        db.execute(
            "UPDATE source_episodes SET closed_at = ? WHERE id = ?", (now_iso(), episode["id"])
        )
        self._enqueue_event(
            db, episode["alert_id"], episode["id"], "source_recovered", notifiers, payload
        )

    @staticmethod
    def _enqueue_event(
        db: sqlite3.Connection, alert_id: str, episode: int, event: str, notifiers: list[str],
        payload: dict[str, Any],
    ) -> None:  # fmt: skip
        body = json.dumps(payload, ensure_ascii=False)
        created = now_iso()
        for notifier in notifiers:
            db.execute(
                "INSERT OR IGNORE INTO deliveries (id, alert_id, notifier, status, created_at, "
                "next_attempt_at, payload, episode_id, event) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
                (new_delivery_id(), alert_id, notifier, created, created, body, episode, event),
            )

    def add_matches(
        self,
        db: sqlite3.Connection,
        matches: list[tuple[Any, ...]],
        deliveries: list[tuple[Any, ...]],
    ) -> None:
        """Record matches (alert, post, matched_at, snippet, offset, url, query) and their
        deliveries (`delivery_rows`) in two statements: the caller has ruled out the pairs
        already there (`already_matched`), in this same transaction."""
        db.executemany(
            "INSERT OR IGNORE INTO matches "
            '(alert_id, post_id, matched_at, snippet, "offset", url, query)'
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            matches,
        )
        db.executemany(
            "INSERT OR IGNORE INTO deliveries (id, alert_id, post_id, notifier, status, "
            "created_at, next_attempt_at, payload) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            deliveries,
        )

    @staticmethod
    def delivery_rows(
        alert_id: str, pid: str, notifiers: list[str], payload: dict[str, Any], created: str
    ) -> list[tuple[Any, ...]]:
        """The `deliveries` rows of one match, for `add_matches`."""
        body = json.dumps(payload, ensure_ascii=False)
        return [
            (new_delivery_id(), alert_id, pid, notifier, created, created, body)
            for notifier in notifiers
        ]

    def matched_links(
        self, db: sqlite3.Connection, alert_id: str, urls: set[str | None]
    ) -> dict[str, list[tuple[str, str]]]:
        """For each of these links that this alert matched before: (post, its source)."""
        sql = (
            "SELECT m.url, m.post_id, p.source_id FROM matches m JOIN posts p ON p.id = m.post_id "
            "WHERE m.alert_id = ? AND m.url IN ({})"
        )
        found: dict[str, list[tuple[str, str]]] = {}
        for url, pid, sid in _where_in(db, sql, [u for u in urls if u], (alert_id,)):
            found.setdefault(url, []).append((pid, sid))
        return found

    def matched_elsewhere(
        self, db: sqlite3.Connection, alert_id: str, pid: str, url: str | None
    ) -> str | None:
        """The source of an earlier match of this alert on another post with the same link."""
        if not url:
            return None
        row = db.execute(
            "SELECT p.source_id FROM matches m JOIN posts p ON p.id = m.post_id "
            "WHERE m.alert_id = ? AND m.url = ? AND m.post_id != ? LIMIT 1",
            (alert_id, url, pid),
        ).fetchone()
        return row[0] if row is not None else None

    def already_matched(self, db: sqlite3.Connection, alert_id: str, pids: list[str]) -> set[str]:
        sql = "SELECT post_id FROM matches WHERE alert_id = ? AND post_id IN ({})"
        return {r[0] for r in _where_in(db, sql, pids, (alert_id,))}


def _state(text: str | None) -> dict[str, Any]:
    """A source's stored state, or {} when there is none or it is unreadable."""
    if not text:
        return {}
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}
