"""One pass over many sources, and the pieces `fetch`, `run` and `record` share."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.archive import open_archive
from monitor.archive.commits import GroupCommit
from monitor.archive.sqlite import Store
from monitor.errors import ArchiveError
from monitor.http import Http, Response
from monitor.match import PassMatches, match_pending
from monitor.outbox import OutboxResult, deliver_due
from monitor.pipeline import SourceResult, describe_error, run_source
from monitor.source_health import HealthEvent, check_sources

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from monitor.config import Config
    from monitor.parsework import ParseWorker
    from monitor.sources.base import SourceConfig


# A pass matches its posts in batches of about this many, as its sources finish: a batch
# costs far less per post than matching each source alone, and matching while the other
# sources are still being fetched and parsed keeps the work off the end of the pass.
MATCH_BATCH = 1000
# How long a source's save may wait for others to share its transaction. Saves come about
# one per parsed feed, a few ms apart: 50 ms makes 13-14 commits of bench_poll's cold pass
# of 200 feeds, where 20 ms made 21-24, and each commit rewrites the index pages its posts
# landed on (commits.py). Paired against 20 ms, 12 passes on one host and 10 on many: a
# median of 19 and 28 ms less wall time. A pass's last saves never wait (GroupCommit).
COMMIT_WAIT = 0.05


@dataclass
class PassResult:
    sources: list[SourceResult] = field(default_factory=list)
    outbox: OutboxResult | None = None
    match_error: str | None = None  # the alerts could not run; the posts wait for the next pass
    health: list[HealthEvent] = field(default_factory=list)  # source-health episodes begun or ended

    @property
    def ok(self) -> bool:
        delivered = self.outbox is None or self.outbox.archive_error is None
        return self.match_error is None and delivered and all(r.ok for r in self.sources)


def make_http(
    config: Config,
    transport: httpx.AsyncBaseTransport | None = None,
    observe: Callable[[Response], None] | None = None,
) -> Http:
    m = config.monitor
    return Http(
        user_agent=m.user_agent,
        timeout=m.timeout,
        max_body=m.max_body,
        per_host=m.per_host,
        max_connections=m.concurrency,
        allow_private=m.allow_private,
        transport=transport,
        observe=observe,
    )


def open_store(config: Config) -> Store:
    store = open_archive(config.database)
    try:
        store.sync_sources(
            (s.id, s.type, config.redact(s.describe())) for s in config.sources.values()
        )
    except store.errors as e:  # a read-only file or directory, a full disk
        store.close()
        if isinstance(e, ArchiveError):  # already says what and where
            raise e from None
        raise ArchiveError(f"cannot write to the archive {store.path}: {e}") from None
    return store


def select_sources(config: Config, ids: list[str] | None) -> list[SourceConfig]:
    """The named sources (even disabled ones: naming one is asking for it), else every enabled one."""
    if ids:
        return [config.sources[i] for i in dict.fromkeys(ids)]  # `fetch a a` fetches a once
    return [s for s in config.sources.values() if s.enabled]


async def fetch_pass(
    config: Config,
    store: Store,
    http: Http,
    sources: list[SourceConfig],
    *,
    deliver: bool = True,
    parser: ParseWorker | None = None,
    on_done: Callable[[SourceResult], None] | None = None,
) -> PassResult:
    """One pass over `sources`; `on_done` hears of each source as it finishes (a progress
    line, and what a pass stopped half-way can still say it stored)."""
    found = PassMatches()
    unmatched = 0
    if parser is not None:
        # With every document in, the parent has only saves left: it shares the parsing.
        parser.idle = lambda: http.fetching == 0

    def match() -> None:
        nonlocal unmatched
        with store.transaction() as db:
            batch = match_pending(db, store, config)
        found.add(batch)  # once committed: a rolled-back batch's matches were never made
        unmatched = 0

    # A source's save waits a little for the next ones to share its commit (see commits.py):
    # with other sources still to come, it costs the pass nothing.
    # Once every source still running has a save waiting, none can join: it goes at once.
    commits = GroupCommit(
        store, wait=COMMIT_WAIT if len(sources) > 1 else 0.0, writers=len(sources)
    )

    async def one(source: SourceConfig) -> SourceResult:
        nonlocal unmatched
        try:
            result = await run_source(
                source, config, store, http, parser, match=False, commits=commits, matched=found
            )
        finally:
            commits.done_writing()
        unmatched += result.new + result.updated
        if on_done is not None:
            on_done(result)
        if unmatched >= MATCH_BATCH:
            with contextlib.suppress(*store.errors):  # the last batch will say what is wrong
                match()
        return result

    outcome = PassResult(list(await asyncio.gather(*(one(s) for s in sources))))
    try:
        match()  # the rest, and whatever an interrupted earlier pass left unmatched
    except store.errors as exc:
        outcome.match_error = f"the alerts could not run: {describe_error(exc)}"
    for r in outcome.sources:
        r.take(found)
    try:
        # After the fetches have written their sources' rows, before the outbox: this pass's
        # health episodes go out with its matches.
        if any(a.watches_sources for a in config.alerts.values()):
            with store.transaction() as db:
                outcome.health = check_sources(db, store, config, [s.id for s in sources])
    except store.errors as exc:
        outcome.match_error = outcome.match_error or (
            f"the source-health alerts could not run: {describe_error(exc)}"
        )
    if deliver:
        outcome.outbox = await deliver_due(store, config, http)
    return outcome
