"""What every source type shares: its common config keys, its context and its result."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from monitor.config_types import Duration
from monitor.models import Post

if TYPE_CHECKING:
    from monitor.http import Http, Response
    from monitor.parsework import ParseWorker

T = TypeVar("T")
# A document this large (bytes or characters) is parsed off the event loop: about 50 ms.
INLINE_PARSE = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """Keys every `[sources.<id>]` table accepts. Subclasses add their own keys as fields."""

    type_name: ClassVar[str] = ""
    id: str
    type: str
    every: Duration | None = None  # None: the `[monitor] every` default
    timeout: Duration | None = None
    enabled: bool = True
    name: str | None = None  # what a reader called it (an imported OPML outline's title)
    # Labels for people: the folders of an imported OPML file ("News/Europe"), kept on export.
    tags: list[str] = field(default_factory=list)

    async def collect(self, ctx: FetchContext) -> Collected:
        """Fetch through `ctx.http` and return the posts found; raise on failure."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for `monitor sources`."""
        url = getattr(self, "url", None)
        return str(url) if url else self.type


@functools.cache
def _parse_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="parse")


@dataclass
class FetchContext:
    """What a source may use during one fetch: the shared client and its saved state."""

    http: Http
    state: dict[str, Any]  # persisted between fetches as JSON (validators, cursors, since_id)
    timeout: float
    log: list[str] = field(default_factory=list)  # notices shown in the summary
    parser: ParseWorker | None = None
    # The configured address's answer: the fetch log's status even when what came back could
    # not be read (an HTML page where the feed was, a page whose selectors match nothing).
    http_status: int | None = None

    async def get_configured(self, url: str) -> Response:
        """GET the address the source's `url` configures, conditionally (its validators live
        in the state), with a notice when that address has moved for good: the next fetches
        would follow the same redirect, until the old address stops answering at all."""
        resp = await self.http.get(url, state=self.state, timeout=self.timeout)
        self.http_status = resp.status
        if resp.moved_to:
            self.log.append(f"url has moved permanently to {resp.moved_to}: set url to it")
        return resp

    async def parse(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` for a pure parser: in the parse worker process when there is one.

        Without one, a large document is parsed in a thread: parsing 10 MB takes seconds,
        and the event loop must go on fetching and delivering meanwhile (the interpreter
        hands it the GIL every few milliseconds).
        """
        if self.parser is None:
            if sum(len(a) for a in args if isinstance(a, bytes | str)) >= INLINE_PARSE:
                # Threads of their own: the default pool's may all be held by SMTP sends.
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(_parse_pool(), fn, *args)
            return fn(*args)
        return await self.parser.parse(fn, *args)  # type: ignore[no-any-return]


@dataclass
class Collected:
    posts: list[Post]
    http_status: int | None = None
    not_modified: bool = False


_clock = time.monotonic  # a seam: tests make time pass without waiting


class PageBudget:
    """Page numbers for a paging loop, at most `max_pages`, none begun past a share of the time.

    The pipeline bounds a whole collection by three timeouts; a source that pages (cursors,
    `?before=`, `since_id`) stops starting new pages after `share` timeouts and keeps what it
    has read, with a notice, rather than losing the whole fetch to the deadline.
    """

    def __init__(self, ctx: FetchContext, max_pages: int, share: float = 1.5) -> None:
        self.ctx = ctx
        self.max_pages = max_pages
        self.give_up = _clock() + share * ctx.timeout
        self.ran_out = False  # stopped by the time budget, not by the data

    def __iter__(self) -> Iterator[int]:
        for page in range(self.max_pages):
            if page and _clock() > self.give_up:
                self.ran_out = True
                self.ctx.log.append(f"stopped paging after {page} pages to stay within the timeout")
                return
            yield page
