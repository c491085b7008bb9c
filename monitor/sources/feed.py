"""The `feed` source: one RSS, Atom or JSON Feed URL, read by monitor.feeds.document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monitor.models import Post
from monitor.sources.base import Collected, FetchContext, SourceConfig


@dataclass(frozen=True, kw_only=True)
class FeedSource(SourceConfig):
    """`type = "feed"`: one RSS, Atom or JSON Feed URL."""

    type_name: ClassVar[str] = "feed"
    url: str

    def validate(self) -> list[str]:
        if not self.url.startswith(("http://", "https://")):
            return ["url: must be an http:// or https:// URL"]
        return []

    async def collect(self, ctx: FetchContext) -> Collected:
        resp = await ctx.get_configured(self.url)
        if resp.status == 304:
            return Collected([], http_status=304, not_modified=True)
        posts, notices = await ctx.parse(
            read_feed, resp.body, resp.url, resp.headers.get("content-type")
        )
        ctx.log.extend(notices)
        return Collected(posts, http_status=resp.status)


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> list[Post]:
    """Posts of an RSS, Atom or JSON Feed document fetched from `url`; ParseError otherwise.

    The parsers, and lxml, are imported by the process that parses: with the parse worker
    running, `monitor fetch` never loads them in the process that fetches and stores.
    """
    from monitor.feeds.document import parse_feed as parse

    return parse(body, url, content_type)


def read_feed(
    body: bytes, url: str, content_type: str | None = None
) -> tuple[list[Post], list[str]]:
    """`parse_feed`, and the notices for the user (a charset label that was wrong)."""
    from monitor.feeds.document import read_feed as read

    return read(body, url, content_type)
