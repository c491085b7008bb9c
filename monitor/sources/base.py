"""What every source type shares: its common config keys, its context and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from monitor.config_types import Duration
from monitor.models import Post

if TYPE_CHECKING:
    from monitor.http import Http


class ParseError(Exception):
    """A response that cannot be read as what the source expects; the message says where."""


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """Keys every `[sources.<id>]` table accepts. Subclasses add their own keys as fields."""

    type_name: ClassVar[str] = ""
    id: str
    type: str
    every: Duration | None = None  # None: the `[monitor] every` default
    timeout: Duration | None = None
    enabled: bool = True

    async def collect(self, ctx: FetchContext) -> Collected:
        """Fetch through `ctx.http` and return the posts found; raise on failure."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for `monitor sources`."""
        url = getattr(self, "url", None)
        return str(url) if url else self.type


@dataclass
class FetchContext:
    """What a source may use during one fetch: the shared client and its saved state."""

    http: Http
    state: dict[str, Any]  # persisted between fetches as JSON (validators, cursors, since_id)
    timeout: float
    log: list[str] = field(default_factory=list)  # notices shown in the summary


@dataclass
class Collected:
    posts: list[Post]
    http_status: int | None = None
    not_modified: bool = False
