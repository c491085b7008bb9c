"""One pass for one source: collect → save → match → enqueue, and its failure recorded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.archive.sqlite import SaveResult, Store, now_iso
from monitor.errors import ArchiveError, ParseError
from monitor.http import FetchError, collection_deadline
from monitor.match import PassMatches, match_pending
from monitor.models import Match, Post
from monitor.sources.base import FetchContext

if TYPE_CHECKING:
    from monitor.archive.commits import GroupCommit
    from monitor.config import Config
    from monitor.http import Http
    from monitor.parsework import ParseWorker
    from monitor.sources.base import SourceConfig

MAX_BACKOFF = 6 * 3600.0
# A document of more than SLICE posts is saved and matched in slices, the event loop free
# between two; a slice is sized to take about SLICE_SECONDS of CPU (see `run_source`), well
# under the 100 ms a waiting source may wait, as a slice now and then takes twice its CPU.
SLICE = 100
MAX_SLICE = 5000
SLICE_SECONDS = 0.025
MATCH_ALONE = 1000  # posts of one document matched as they are saved, even in a pass
log = logging.getLogger("monitor")


@dataclass
class SourceResult:
    source_id: str
    ok: bool
    new: int = 0
    updated: int = 0
    http_status: int | None = None
    not_modified: bool = False
    error: str | None = None
    matches: list[Match] = field(default_factory=list)
    seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    next_attempt_at: str | None = None
    # Set when the archive could not be written (a full disk): nothing of this fetch was kept,
    # its failure included, and the daemon waits before fetching more it cannot keep.
    archive_error: str | None = None

    def take(self, found: PassMatches) -> None:
        """Move this source's matches and alert notices out of `found` into the result."""
        self.matches += found.matches.pop(self.source_id, [])
        self.notices += found.notices.pop(self.source_id, [])


def describe_error(exc: BaseException) -> str:
    """A failure as a user reads it in `monitor sources`: what went wrong, not a traceback."""
    if isinstance(exc, FetchError | ParseError | ArchiveError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"internal error: {type(exc).__name__}{': ' + text if text else ''}"


def backoff_delay(failures: int, every: float, retry_after: float | None) -> float:
    """Wait before the next attempt after `failures` consecutive failures (1 = first)."""
    # The exponent is held below the cap's: past about a thousand failures (a dead feed that
    # `monitor fetch` tries every few minutes from cron, for a few days) 2 ** n is too large to
    # become a float, and recording the failure would raise.
    doublings = min(max(0, failures - 1), 64)
    delay = min(every * (2**doublings), max(every, MAX_BACKOFF))
    delay *= random.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


async def run_source(
    source: SourceConfig,
    config: Config,
    store: Store,
    http: Http,
    parser: ParseWorker | None = None,
    *,
    match: bool = True,
    commits: GroupCommit | None = None,
    matched: PassMatches | None = None,
) -> SourceResult:
    """Fetch, store and match one source. Never raises for the source's own failures.

    With `match=False` the posts are saved for a later `match_pending` (a pass matches once,
    after its sources, rather than once per source: the search index and the alert queries
    cost far less for one batch of posts than for two hundred small ones); a save that edits
    indexed posts still matches at once. With `commits`, the save shares a transaction with
    the other sources' that are ready at the same time. With `matched`, what the matching
    found goes there, for the pass to hand out, rather than into the result.
    """
    started = time.monotonic()
    # Logged once, when the fetch ends: a row per fetch, written with the posts it saved.
    started_at = now_iso()
    # What was logged before this fetch began: a fetch logged after it, of this source, may
    # have started later (another process's) and saved a newer answer first.
    logged_before, state = store.fetch_start(source.id)
    timeout = source.timeout or config.monitor.timeout
    ctx = FetchContext(http=http, state=state, timeout=timeout, parser=parser)
    # The deadline bounds the whole collection (several requests, parsing), not one request.
    deadline = timeout * 3
    try:
        async with collection_deadline(deadline):
            collected = await source.collect(ctx)
    except asyncio.CancelledError:
        _interrupted(store, source.id, started_at)
        raise
    except Exception as exc:  # noqa: BLE001 - one source's failure must never escape
        error = f"timed out after {deadline:g}s" if isinstance(exc, TimeoutError) else None
        return _failed(
            source, config, store, started_at, exc, error, started, ctx.log, ctx.http_status
        )
    # A huge document (a feed of 24,000 items, all matching an alert) is saved and matched
    # a slice at a time, each in its own transaction, with the event loop free in between:
    # in one go it held every other source and every delivery for seconds. A slice is sized
    # to take about SLICE_SECONDS of CPU, from what the last one took (CPU, not wall time:
    # on a busy machine a slice measured by the clock shrinks to a few posts, whose fixed
    # cost then makes the whole document slower, without a shorter stall). The validators are
    # written with the last slice, so a crash part-way fetches the document again and saves
    # the rest; the slices of a document too big to wait for the pass's batch are matched
    # as they go, never all at once.
    posts = _first_of_each(collected.posts) if len(collected.posts) > SLICE else collected.posts
    alone = len(posts) > MATCH_ALONE
    # Nothing new on an archive that daemons share: no matching, so no turn to wait for; the
    # posts other daemons saved are theirs to match (each save matches its own).
    quiet = not posts and store.shared and commits is None
    saved, found = SaveResult(), PassMatches()
    at, size, took = 0, SLICE, [0.0]
    heard = list(ctx.log)  # what the fetch said: the write may run twice (a group failed)
    try:
        while True:
            part = posts[at : at + size]
            at += len(part)
            last = at >= len(posts)

            # A crash after this commit can't lose an alert: the posts stay above the search
            # mark (in `unmatched`, on PostgreSQL) until a `match_pending` matches them, in
            # its own commit.
            def write(
                db: sqlite3.Connection,
                part: list[Post] = part,
                last: bool = last,
                before: SaveResult = saved,
            ) -> tuple[SaveResult, PassMatches]:
                # Timed only to size the next slice: a document of one slice (every 304)
                # skips the clock, a system call, not a cheap read, for a thread's CPU.
                began = 0.0 if last else time.thread_time()
                # Posts only move forward: an answer older than one saved already (two
                # processes fetched the source at once; this one began first and saves last)
                # adds the posts the archive lacks, and leaves the ones the newer fetch saved
                # as it saved them.
                older = store.newer_fetch_saved(db, source.id, started_at, logged_before)
                done = store.save_posts(
                    db, source.id, part, older_than=started_at if older else None
                )
                if last:
                    total = _sum(before, done)
                    notices = list(heard)
                    if total.stale:
                        notices.append(
                            f"{total.stale} posts left as a newer fetch of this source saved "
                            "them: this answer began earlier and was saved later"
                        )
                    ctx.log[:] = notices
                    store.finish_fetch_ok(
                        db, source.id, started_at, collected.http_status, total,
                        None if older else ctx.state, [config.redact(n) for n in notices],
                    )  # fmt: skip
                    if found.notices.get(source.id):  # the earlier slices' alerts said so
                        store.add_notices(db, source.id, found.notices[source.id])
                # An edit took the post's old version out of the index: its new one goes in
                # before this commits, so that no search in between misses the post.
                reindex = not quiet and (match or done.unindexed or alone)
                more = match_pending(db, store, config) if reindex else PassMatches()
                if not last:
                    took[0] = time.thread_time() - began
                return done, more

            if commits is not None:
                # A slice of a big document is written at once: the next one waits for it.
                done, more = await commits.run(write, wait=last)
            else:
                began = 0.0 if last else time.thread_time()
                # Unordered: a save needs no turn; its matching takes one (on PostgreSQL,
                # where daemons save at once: `index_pending`).
                with store.transaction(ordered=False) as db:
                    done, more = write(db)
                if not last:
                    took[0] = time.thread_time() - began  # the commit with it
            saved = _sum(saved, done)
            found.add(more)
            if last:
                break
            # At most twice as large as the last: one quick slice must not make a slow one.
            grow = min(2.0, SLICE_SECONDS / max(took[0], 0.001))
            size = max(10, min(MAX_SLICE, int(size * grow)))
            # The other sources' turn. Not sleep(0): the loop runs this task's wake-up, queued
            # first, before the timers that fell due meanwhile, so a waiting source or
            # delivery sat through two slices, not one (a stall of 140 ms, not 40). A timer
            # of our own queues behind theirs.
            await asyncio.sleep(0.001)
    except asyncio.CancelledError:
        _interrupted(store, source.id, started_at)  # the slices saved so far stay saved
        raise
    except Exception as exc:  # noqa: BLE001
        error = f"could not store: {describe_error(exc)}"
        return _failed(
            source, config, store, started_at, exc, error, started, ctx.log, ctx.http_status
        )
    result = SourceResult(
        source.id, True, new=saved.new, updated=saved.updated,
        http_status=collected.http_status, not_modified=collected.not_modified,
        seconds=time.monotonic() - started, notices=ctx.log,
    )  # fmt: skip
    if matched is not None:
        matched.add(found)  # the pass hands them out with the rest of its matches
        return result
    result.take(found)
    for sid, matches in found.matches.items():
        # Posts another process saved, or an interrupted pass, matched with this one's.
        log.info("%s: %d matches of posts saved earlier", sid, len(matches))
    return result


def _first_of_each(posts: list[Post]) -> list[Post]:
    """The first post of each id, as one save keeps: a later slice would see a repeat of an
    earlier slice's item as an edit of it."""
    first: dict[str, Post] = {}
    for post in posts:
        first.setdefault(post.external_id, post)
    return list(first.values())


def _sum(a: SaveResult, b: SaveResult) -> SaveResult:
    return SaveResult(new=a.new + b.new, updated=a.updated + b.updated, stale=a.stale + b.stale)


def _failed(
    source: SourceConfig,
    config: Config,
    store: Store,
    started_at: str,
    exc: BaseException,
    error: str | None,
    started: float,
    notices: list[str],
    answered: int | None = None,
) -> SourceResult:
    error = config.redact(error or describe_error(exc))
    status = exc.status if isinstance(exc, FetchError) else answered
    retry_after = exc.retry_after if isinstance(exc, FetchError) else None
    row = store.source(source.id)
    failures = (row["failures"] if row is not None else 0) + 1
    every = source.every or config.monitor.every
    next_at = now_iso(time.time() + backoff_delay(failures, every, retry_after))
    archive_error = describe_error(exc) if isinstance(exc, ArchiveError) else None
    try:
        with store.transaction() as db:
            store.finish_fetch_failed(
                db, source.id, started_at, error, status, next_at,
                [config.redact(n) for n in notices],
            )  # fmt: skip
    except store.errors as record_exc:  # the failure can't be recorded either: said, not raised
        archive_error = archive_error or describe_error(record_exc)
        log.debug("%s: the failure could not be recorded: %s", source.id, record_exc)
    return SourceResult(
        source.id, False, http_status=status, error=error,
        seconds=time.monotonic() - started, notices=notices, next_attempt_at=next_at,
        archive_error=archive_error,
    )  # fmt: skip


def _interrupted(store: Store, source_id: str, started_at: str) -> None:
    """A fetch abandoned at shutdown says so, rather than vanishing from the log."""
    with contextlib.suppress(Exception):  # best effort while stopping
        store.log_interrupted(source_id, started_at)
