"""The `bluesky` source: an account's posts and reposts from `app.bsky.feed.getAuthorFeed`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from monitor.errors import ParseError
from monitor.http import FetchError
from monitor.models import Kind, Media, Post
from monitor.sources.base import Collected, FetchContext, PageBudget, SourceConfig
from monitor.text import parse_date

_HANDLE = re.compile(
    r"^(?=.{3,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", re.I
)
_DID = re.compile(r"^did:(plc|web):[A-Za-z0-9._:%-]+$")
PAGE_MAX = 100  # the AppView's own cap on `limit`
MAX_PAGES = 10  # a later fetch pages back at most this far to reach the posts it has seen
REPOST = "app.bsky.feed.defs#reasonRepost"
HLS = "application/vnd.apple.mpegurl"


@dataclass(frozen=True, kw_only=True)
class BlueskySource(SourceConfig):
    """`type = "bluesky"`: one account, read anonymously from a public AppView."""

    type_name: ClassVar[str] = "bluesky"
    handle: str  # "outlet.bsky.social", a custom-domain handle, or a DID
    appview: str = "https://public.api.bsky.app"
    limit: int = 50  # posts on the first fetch, and the page size (at most 100)
    include_reposts: bool = True

    def validate(self) -> list[str]:
        problems = []
        if not (_HANDLE.match(self.handle) or _DID.match(self.handle)):
            hint = self.handle.strip().removeprefix("@").rstrip("/").rsplit("/", 1)[-1]
            problems.append(
                f"handle: {self.handle!r} is not a Bluesky handle (like 'outlet.bsky.social') "
                "or a DID" + (f"; did you mean {hint!r}?" if _HANDLE.match(hint) else "")
            )
        if not self.appview.startswith(("http://", "https://")):
            problems.append(f"appview: must be an http(s) URL, got {self.appview!r}")
        if not 1 <= self.limit <= 1000:
            problems.append("limit: must be between 1 and 1000")
        return problems

    def describe(self) -> str:
        return f"@{self.handle} via {self.appview}"

    def feed_url(self, cursor: str | None = None) -> str:
        params: dict[str, Any] = {"actor": self.handle, "limit": min(self.limit, PAGE_MAX)}
        if cursor:
            params["cursor"] = cursor
        base = self.appview.rstrip("/")
        return f"{base}/xrpc/app.bsky.feed.getAuthorFeed?{urlencode(params)}"

    async def collect(self, ctx: FetchContext) -> Collected:
        """Pages of the author feed, newest first, until the newest entry of the last fetch
        (later fetches) or `limit` entries (the first fetch)."""
        known = ctx.state.get("actor") == self.handle.lower() and "newest_at" in ctx.state
        seen_at = _instant(ctx.state["newest_at"]) if known else None
        seen_key = ctx.state.get("newest_key") if known else None
        entries: list[Entry] = []
        cursor: str | None = None
        status: int | None = None
        done = False
        pages = PageBudget(ctx, MAX_PAGES)
        for _ in pages:
            resp = await ctx.http.get(
                self.feed_url(cursor), timeout=ctx.timeout, ok_statuses=(400,)
            )
            status = resp.status
            if resp.status == 400:
                raise FetchError(xrpc_error(resp.body, self.handle), status=400)
            page, cursor = parse_author_feed(resp.body, resp.url)
            for entry in page:
                if seen_at is not None and (
                    entry.key == seen_key or (entry.sort_at is not None and entry.sort_at < seen_at)
                ):
                    done = True  # the newest entry of the last fetch: the rest is known
                    break
                entries.append(entry)
            if done or not cursor or not page:
                done = True
                break
            if not known and len(entries) >= self.limit:
                break
        if known and not done and not pages.ran_out:
            ctx.log.append(f"stopped after {MAX_PAGES} pages; older new posts were skipped")
        if not known:
            entries = entries[: self.limit]
        if entries:
            top = entries[0]
            ctx.state.update(
                actor=self.handle.lower(),
                newest_at=top.sort_at.isoformat() if top.sort_at else ctx.state.get("newest_at"),
                newest_key=top.key,
            )
        elif not known:
            ctx.state.update(actor=self.handle.lower(), newest_at=_EPOCH, newest_key=None)
        posts = [e.post for e in entries if self.include_reposts or not e.repost]
        return Collected(posts, http_status=status)


_EPOCH = "1970-01-01T00:00:00+00:00"


def xrpc_error(body: bytes, actor: str) -> str:
    """An XRPC error answer (`{"error": ..., "message": ...}`) as a sentence."""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    message = data.get("message") or data.get("error") or "bad request"
    return f"Bluesky AppView refused the feed of {actor!r}: {message} (HTTP 400)"


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One item of an author feed: the post, and where it sits in the feed."""

    post: Post
    key: str  # the post's URI, or the repost's when it is one: unique within the feed
    sort_at: datetime | None  # when it entered the feed: the repost's time for a repost
    repost: bool


def parse_author_feed(body: bytes, url: str = "") -> tuple[list[Entry], str | None]:
    """The entries of a getAuthorFeed answer, newest first, and the cursor of the next page."""
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ParseError(f"{url}: not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("feed"), list):
        raise ParseError(f"{url}: not an author feed (no 'feed' list)")
    entries = []
    for i, item in enumerate(data["feed"]):
        if not isinstance(item, dict) or not isinstance(item.get("post"), dict):
            raise ParseError(f"{url}: feed[{i}] has no post")
        entry = parse_feed_item(item)
        if entry is not None:
            entries.append(entry)
    cursor = data.get("cursor")
    return entries, cursor if isinstance(cursor, str) and cursor else None


def parse_feed_item(item: dict[str, Any]) -> Entry | None:
    view = item["post"]
    uri = view.get("uri") or ""
    record = view.get("record") or {}
    author = view.get("author") or {}
    url = post_url(uri, author)
    if url is None:
        return None
    reason = item.get("reason") or {}
    repost = reason.get("$type") == REPOST
    media, quote, card, video_alt = _embed(view.get("embed"))
    text = expand_links(record.get("text") or "", record.get("facets"))
    extra: dict[str, Any] = {
        k: view[k]
        for k in ("likeCount", "repostCount", "replyCount", "quoteCount")
        if isinstance(view.get(k), int)
    }
    if quote:
        extra["quote"] = quote
    if quote and "state" not in quote:
        # A quote repeats the quoted words under the account's name; they belong in what an
        # alert searches, set off as a quoted block.
        lines = (quote.get("text") or "").splitlines() or [""]
        block = "\n".join([f"> {quote['author']}:", *(f"> {line}" for line in lines)])
        text = f"{text}\n\n{block}" if text else block
    if card:
        extra["card"] = card
    if video_alt:
        extra["video_alt"] = video_alt
    if repost:
        extra["reposted_by"] = author_name(reason.get("by") or {})
        if reason.get("indexedAt"):
            extra["reposted_at"] = parse_date(reason["indexedAt"])
    parent = ((record.get("reply") or {}).get("parent") or {}).get("uri")
    if parent:
        extra["reply_to"] = parent
    langs = [x for x in record.get("langs") or [] if isinstance(x, str)]
    if len(langs) > 1:
        extra["langs"] = langs
    kind: Kind = "video" if any(m.medium == "video" for m in media) else "post"
    post = Post(
        external_id=uri,
        url=url,
        text=text or None,
        author=author_name(author),
        kind=kind,
        published_at=parse_date(record.get("createdAt")) or parse_date(view.get("indexedAt")),
        lang=langs[0] if langs else None,
        media=tuple(media),
        extra=extra,
    )
    sort_at = _instant(reason.get("indexedAt") if repost else view.get("indexedAt"))
    key = (reason.get("uri") or f"repost:{extra['reposted_by']}:{uri}") if repost else uri
    return Entry(post=post, key=key, sort_at=sort_at, repost=repost)


def post_url(uri: str, author: dict[str, Any]) -> str | None:
    """`at://<did>/app.bsky.feed.post/<rkey>` as the bsky.app address people share."""
    m = re.match(r"^at://([^/]+)/app\.bsky\.feed\.post/([^/]+)$", uri)
    if not m:
        return None
    handle = author.get("handle")
    who = handle if handle and handle != "handle.invalid" else m.group(1)
    return f"https://bsky.app/profile/{who}/post/{m.group(2)}"


def author_name(profile: dict[str, Any]) -> str:
    handle = profile.get("handle") or profile.get("did") or "unknown"
    name = (profile.get("displayName") or "").strip()
    return f"{name} (@{handle})" if name else f"@{handle}"


def expand_links(text: str, facets: Any) -> str:
    """The text with each shortened link (`example.org/a-long-pa...`) written out in full:
    clients shorten them in the text and keep the whole URL in a facet, by UTF-8 offsets."""
    if not text or not isinstance(facets, list):
        return text
    raw = text.encode("utf-8")
    spans = []
    for facet in facets:
        index = (facet or {}).get("index") or {}
        start, end = index.get("byteStart"), index.get("byteEnd")
        for feature in (facet or {}).get("features") or []:
            if (
                isinstance(feature, dict)
                and feature.get("$type") == "app.bsky.richtext.facet#link"
                and isinstance(start, int)
                and isinstance(end, int)
                and 0 <= start < end <= len(raw)
            ):
                spans.append((start, end, str(feature.get("uri") or "")))
    for start, end, uri in sorted(spans, reverse=True):
        shown = raw[start:end].decode("utf-8", errors="replace")
        if uri and shown.endswith(("...", "…")):
            raw = raw[:start] + uri.encode("utf-8") + raw[end:]
    return raw.decode("utf-8", errors="replace")


def _embed(
    embed: Any,
) -> tuple[list[Media], dict[str, Any] | None, dict[str, str] | None, str | None]:
    """Media, quoted post, link card and video alt text of a post's embed view."""
    media: list[Media] = []
    quote = card = video_alt = None
    if not isinstance(embed, dict):
        return media, quote, card, video_alt
    kind = embed.get("$type") or ""
    if kind == "app.bsky.embed.recordWithMedia#view":
        quote = _quote((embed.get("record") or {}).get("record"))
        media, _, card, video_alt = _embed(embed.get("media"))
    elif kind == "app.bsky.embed.record#view":
        quote = _quote(embed.get("record"))
    elif kind == "app.bsky.embed.images#view":
        for image in embed.get("images") or []:
            src = image.get("fullsize") or image.get("thumb")
            if src:
                w, h = _aspect(image)
                media.append(Media(url=src, medium="image", width=w, height=h, role="content"))
    elif kind == "app.bsky.embed.video#view":
        w, h = _aspect(embed)
        if embed.get("playlist"):
            media.append(
                Media(url=embed["playlist"], medium="video", type=HLS, width=w, height=h,
                      role="content")
            )  # fmt: skip
        if embed.get("thumbnail"):
            media.append(Media(url=embed["thumbnail"], medium="image", role="thumbnail"))
        video_alt = embed.get("alt") or None
    elif kind == "app.bsky.embed.external#view":
        ext = embed.get("external") or {}
        if ext.get("uri"):
            card = {"url": ext["uri"]}
            card.update({k: ext[k] for k in ("title", "description") if ext.get(k)})
            media.append(Media(url=ext["uri"], role="link"))
            if ext.get("thumb"):
                media.append(Media(url=ext["thumb"], medium="image", role="card"))
    return media, quote, card, video_alt


def _quote(record: Any) -> dict[str, Any] | None:
    if not isinstance(record, dict):
        return None
    kind = record.get("$type") or ""
    uri = record.get("uri") or ""
    if kind == "app.bsky.embed.record#viewRecord":
        value = record.get("value") or {}
        author = record.get("author") or {}
        out = {
            "uri": uri,
            "url": post_url(uri, author),
            "author": author_name(author),
            "text": expand_links(value.get("text") or "", value.get("facets")),
            "created_at": parse_date(value.get("createdAt")),
        }
        return {k: v for k, v in out.items() if v is not None}
    # A deleted, blocked or detached post, or a quoted feed, list or starter pack: what it was.
    what = kind.rsplit("#", 1)[-1] if "#" in kind else kind.rsplit(".", 1)[-1]
    return {
        "uri": uri,
        "state": {
            "viewNotFound": "deleted",
            "viewBlocked": "blocked",
            "viewDetached": "detached",
        }.get(what, what or "unknown"),
    }


def _aspect(view: dict[str, Any]) -> tuple[int | None, int | None]:
    ratio = view.get("aspectRatio") or {}
    w, h = ratio.get("width"), ratio.get("height")
    return (w, h) if isinstance(w, int) and isinstance(h, int) else (None, None)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
