"""One pass over many sources, and the pieces `fetch`, `run` and `record` share."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.http import Http
from monitor.outbox import OutboxResult, deliver_due
from monitor.pipeline import SourceResult, run_source
from monitor.store import Store

if TYPE_CHECKING:
    import httpx

    from monitor.config import Config
    from monitor.parsework import ParseWorker
    from monitor.sources.base import SourceConfig


@dataclass
class PassResult:
    sources: list[SourceResult] = field(default_factory=list)
    outbox: OutboxResult | None = None

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.sources)


def make_http(config: Config, transport: httpx.AsyncBaseTransport | None = None) -> Http:
    m = config.monitor
    return Http(
        user_agent=m.user_agent,
        timeout=m.timeout,
        max_body=m.max_body,
        per_host=m.per_host,
        max_connections=m.concurrency,
        allow_private=m.allow_private,
        transport=transport,
    )


def open_store(config: Config) -> Store:
    store = Store(config.database)
    store.sync_sources((s.id, s.type, config.redact(s.describe())) for s in config.sources.values())
    return store


def select_sources(config: Config, ids: list[str] | None) -> list[SourceConfig]:
    """The named sources (even disabled ones: naming one is asking for it), else every enabled one."""
    if ids:
        return [config.sources[i] for i in ids]
    return [s for s in config.sources.values() if s.enabled]


async def fetch_pass(
    config: Config,
    store: Store,
    http: Http,
    sources: list[SourceConfig],
    *,
    deliver: bool = True,
    parser: ParseWorker | None = None,
) -> PassResult:
    results = await asyncio.gather(*(run_source(s, config, store, http, parser) for s in sources))
    outcome = PassResult(list(results))
    if deliver:
        outcome.outbox = await deliver_due(store, config, http)
    return outcome
