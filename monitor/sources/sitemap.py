"""The `sitemap` source: sitemaps, sitemap indexes and Google News sitemaps read into posts."""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lxml import etree

from monitor.errors import ParseError
from monitor.http import FetchError, same_origin
from monitor.models import Media, Post
from monitor.sources.article import read_article_head
from monitor.sources.base import Collected, FetchContext, SourceConfig
from monitor.text import absolute_url, html_to_text, parse_date
from monitor.xmlsafe import parse_xml

MAX_UNZIPPED = 50_000_000  # the protocol caps a sitemap at 50 MB uncompressed
MAX_CHILDREN = 3  # newest children followed per index
MAX_LEVELS = 2  # an index of indexes is followed, one more level is not
MAX_FETCHES = 6  # child sitemaps fetched per pass, whatever the nesting
MAX_READS = 20  # article pages read per pass for entries without a title; the rest wait
KEEP_READ = 3  # how many times `limit` pages are remembered as read


@dataclass
class SitemapPage:
    """One sitemap document: an index lists `children`, a urlset gives `posts`."""

    children: list[tuple[str, str | None]] = field(default_factory=list)  # (loc, lastmod ISO)
    posts: list[Post] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class SitemapSource(SourceConfig):
    """`type = "sitemap"`: a sitemap, news sitemap or sitemap index; only the newest entries."""

    type_name: ClassVar[str] = "sitemap"
    url: str
    limit: int = 100
    # A plain sitemap gives links and dates only: nothing an alert or a search could match.
    # Each new such entry's page is read once for its own title, summary and date.
    read_pages: bool = True

    def validate(self) -> list[str]:
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append("url: must be an http:// or https:// URL")
        if self.limit < 1:
            problems.append("limit: must be at least 1")
        return problems

    async def collect(self, ctx: FetchContext) -> Collected:
        resp = await ctx.get_configured(self.url)
        if resp.status == 304:
            # An index can stay unchanged while the sitemaps it lists change, so the children
            # seen last time are still checked (each with its own conditional GET).
            page = SitemapPage(children=[(c[0], c[1]) for c in ctx.state.get("children", [])])
        else:
            page = parse_sitemap(resp.body, resp.url)
            if page.children:
                ctx.state["children"] = [list(c) for c in newest(page.children)[:MAX_CHILDREN]]
            else:
                ctx.state.pop("children", None)
        posts = list(page.posts)
        changed = resp.status != 304
        queue = [(loc, 1) for loc, _ in newest(page.children)[:MAX_CHILDREN]]
        errors: list[Exception] = []
        visited = {self.url}
        while queue and len(visited) <= MAX_FETCHES:
            loc, level = queue.pop(0)
            if loc in visited:
                continue
            visited.add(loc)
            try:
                # Child locations come from the response: off the index's own host they are
                # content, and must not lead to private addresses.
                child = await ctx.http.get(
                    loc, state=ctx.state, timeout=ctx.timeout,
                    trusted=same_origin(loc, self.url),
                )  # fmt: skip
                if child.status == 304:
                    continue
                sub = parse_sitemap(child.body, child.url)
            except (FetchError, ParseError) as e:
                ctx.log.append(f"child sitemap {loc}: {e}")
                errors.append(e)
                continue
            changed = True
            posts.extend(sub.posts)
            if sub.children and level < MAX_LEVELS:
                queue.extend((c, level + 1) for c, _ in newest(sub.children)[:MAX_CHILDREN])
        # Monthly child sitemaps come and go: forget the validators of those no longer read.
        validators = ctx.state.get("validators", {})
        for stale in set(validators) - visited:
            del validators[stale]
        if errors and len(errors) == len(visited) - 1 and not posts:
            raise errors[0]
        if not changed:
            return Collected([], http_status=304, not_modified=True)
        posts = newest_posts(posts, self.limit)
        if self.read_pages:
            posts = await self._read_untitled(ctx, posts)
        return Collected(posts, http_status=resp.status)

    async def _read_untitled(self, ctx: FetchContext, posts: list[Post]) -> list[Post]:
        """Titled entries as they are; untitled ones with what their page says, read once.

        An entry whose page was read before (at the same lastmod) is left out: it is in the
        archive already, with its page's title, which the bare entry would overwrite.
        """
        read: dict[str, str] = ctx.state.get("read", {})
        titled = [p for p in posts if not _untitled(p)]
        todo = [p for p in posts if _untitled(p) and read.get(str(p.url)) != _mark(p)]
        if len(todo) > MAX_READS:
            ctx.log.append(f"{len(todo) - MAX_READS} new pages left for the next fetch")
            todo = todo[:MAX_READS]
        answers = await asyncio.gather(*(self._read_page(ctx, p) for p in todo))
        failed = [why for _, why in answers if why]
        if failed:
            ctx.log.append(f"could not read {len(failed)} of {len(todo)} new pages: {failed[0]}")
        for post in todo:
            read.pop(str(post.url), None)
            read[str(post.url)] = _mark(post)
        # Oldest first in the dict: keep the most recently read.
        ctx.state["read"] = dict(list(read.items())[-KEEP_READ * self.limit :])
        return titled + [post for post, _ in answers]

    async def _read_page(self, ctx: FetchContext, post: Post) -> tuple[Post, str | None]:
        url = str(post.url)
        try:
            # Off the sitemap's own host the link is content: no private addresses.
            resp = await ctx.http.get(url, timeout=ctx.timeout, trusted=same_origin(url, self.url))
            head = read_article_head(resp.body, resp.url, resp.headers.get("content-type"))
        except FetchError as e:
            return post, f"{url}: {e}"
        media = post.media
        if head.image and not media:
            media = (Media(url=head.image, medium="image", role="image"),)
        return dataclasses.replace(
            post, title=head.title, text=head.summary,
            published_at=head.published_at or post.published_at,
            lang=head.lang or post.lang, media=media,
        ), None  # fmt: skip


def _untitled(post: Post) -> bool:
    return bool(post.url) and not post.title


def _mark(post: Post) -> str:
    # Read again when the sitemap says the page changed (a new lastmod).
    return post.published_at or ""


def newest(children: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Children by lastmod, newest first; those without a lastmod after, in document order."""
    dated = sorted((c for c in children if c[1]), key=lambda c: c[1] or "", reverse=True)
    return dated + [c for c in children if not c[1]]


def newest_posts(posts: list[Post], limit: int) -> list[Post]:
    """The `limit` newest posts, one per URL, undated ones last."""
    seen: set[str] = set()
    unique = []
    for p in sorted(posts, key=lambda p: p.published_at or "", reverse=True):
        if p.external_id not in seen:
            seen.add(p.external_id)
            unique.append(p)
    return unique[:limit]


def gunzip(body: bytes, limit: int = MAX_UNZIPPED) -> bytes:
    """A gzip body decompressed, refusing more than `limit` bytes (a gzip bomb stops there)."""
    out = bytearray()
    data = body
    while data[:2] == b"\x1f\x8b":  # concatenated gzip members are one valid file
        inflater = zlib.decompressobj(wbits=31)
        try:
            out += inflater.decompress(data, limit - len(out) + 1)
        except zlib.error as e:
            raise ParseError(f"broken gzip data: {e}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise ParseError(f"gzipped sitemap is larger than {limit / 1e6:g} MB unzipped")
        if not inflater.eof:
            raise ParseError("gzipped sitemap is truncated")
        data = inflater.unused_data
    return bytes(out)


def _local(tag: Any) -> str:
    # Local names only: sitemaps in the wrong or an obsolete namespace are common and harmless.
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _text(el: etree._Element | None) -> str | None:
    if el is None:
        return None
    return (el.text or "").strip() or None


def _child(el: etree._Element, name: str) -> etree._Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def parse_sitemap(body: bytes, url: str) -> SitemapPage:
    """A sitemap index's children or a urlset's posts (plain, image, video, Google News)."""
    if body[:2] == b"\x1f\x8b":
        body = gunzip(body)
    root = parse_xml(body, base_url=url)
    kind = _local(root.tag)
    if kind == "sitemapindex":
        children = []
        for sm in root:
            if _local(sm.tag) != "sitemap":
                continue
            loc = absolute_url(_text(_child(sm, "loc")), url)
            if loc and loc.startswith(("http://", "https://")):
                children.append((loc, parse_date(_text(_child(sm, "lastmod")))))
        return SitemapPage(children=children)
    if kind == "urlset":
        return SitemapPage(posts=[p for u in root if _local(u.tag) == "url" for p in _url(u, url)])
    if kind in ("rss", "RDF", "feed"):
        raise ParseError(f'not a sitemap but a feed (<{kind}>): use type = "feed"')
    raise ParseError(f"not a sitemap: the root element is <{kind or root.tag}>")


def _url(u: etree._Element, base: str) -> list[Post]:
    """The post for one <url> entry (a list: empty when it has no usable <loc>)."""
    loc = absolute_url(_text(_child(u, "loc")), base)
    if not loc:
        return []
    lastmod = parse_date(_text(_child(u, "lastmod")))
    title = published = lang = text = video_title = image_title = video_date = None
    extra: dict[str, Any] = {}
    media: list[Media] = []
    for c in u:
        name = _local(c.tag)
        if name == "news":
            title = title or _text(_child(c, "title"))
            published = parse_date(_text(_child(c, "publication_date")))
            pub = _child(c, "publication")
            if pub is not None:
                lang = _text(_child(pub, "language"))
                extra["publication"] = _text(_child(pub, "name"))
            extra["keywords"] = _text(_child(c, "keywords"))
        elif name == "image":
            img = absolute_url(_text(_child(c, "loc")), base)
            if img:
                media.append(Media(url=img, medium="image", role="image"))
            image_title = image_title or _text(_child(c, "title"))
        elif name == "video":
            video_title = video_title or _text(_child(c, "title"))
            video_date = video_date or parse_date(_text(_child(c, "publication_date")))
            desc = _text(_child(c, "description"))
            text = text or (html_to_text(desc) if desc else None)
            src = _text(_child(c, "content_loc")) or _text(_child(c, "player_loc"))
            src = absolute_url(src, base)
            if src:
                duration = _text(_child(c, "duration"))
                media.append(
                    Media(
                        url=src,
                        medium="video",
                        duration=float(duration) if duration and duration.isdigit() else None,
                        role="video",
                    )
                )
            thumb = absolute_url(_text(_child(c, "thumbnail_loc")), base)
            if thumb:
                media.append(Media(url=thumb, medium="image", role="thumbnail"))
    title = title or video_title or image_title
    return [
        Post(
            external_id=loc,
            url=loc,
            title=" ".join(title.split()) if title else None,
            text=text or None,
            kind="article",
            published_at=published or lastmod or video_date,
            lang=lang,
            media=tuple(media),
            extra={k: v for k, v in extra.items() if v},
        )
    ]
