"""The `youtube` source: a channel's or playlist's Atom feed, yt-dlp only for videos not yet seen."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from monitor import ytdlp
from monitor.errors import ParseError
from monitor.http import FetchError
from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext, SourceConfig
from monitor.sources.video import (
    needs_details,
    record_failure,
    settle,
    transcript_missing,
    video_record,
    within,
)
from monitor.text import clean_space, parse_date
from monitor.transcripts import (
    merge_transcribed,
    queue_speech,
    speech_results,
    wants_speech,
    with_transcript,
)
from monitor.xmlsafe import parse_xml

WATCH = "https://www.youtube.com/watch?v="
_CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}$")
_PLAYLIST_ID = re.compile(r"^[A-Za-z0-9_-]{10,64}$")
_HANDLE = re.compile(r"^@?[\w.-]{3,30}$")
_NS = {
    "a": "http://www.w3.org/2005/Atom",
    "yt": "http://www.youtube.com/xml/schemas/2015",
    "media": "http://search.yahoo.com/mrss/",
}
# Where a channel page names its own id: the canonical link, then the page's metadata. Other
# "channelId" strings on the page may belong to featured channels, so they are not used.
_PAGE_ID = (
    re.compile(rb'<link rel="canonical" href="https?://www\.youtube\.com/channel/(UC[\w-]{22})"'),
    re.compile(rb'"externalId"\s*:\s*"(UC[\w-]{22})"'),
    re.compile(rb'<meta itemprop="(?:identifier|channelId)" content="(UC[\w-]{22})"'),
)
# YouTube's consent wall (EU) stands in front of channel pages for cookie-less clients.
_CONSENT_COOKIE = {"Cookie": "SOCS=CAI; CONSENT=YES+"}


@dataclass(frozen=True)
class FeedVideo:
    """One <entry> of a YouTube feed."""

    id: str
    title: str | None
    description: str | None
    author: str | None
    channel_id: str | None
    published_at: str | None
    thumbnail: Media | None
    views: int | None


@dataclass(frozen=True, kw_only=True)
class YoutubeSource(SourceConfig):
    """`type = "youtube"`: one of `channel_id`, `handle` or `playlist_id`."""

    type_name: ClassVar[str] = "youtube"
    channel_id: str | None = None
    handle: str | None = None
    playlist_id: str | None = None
    feed_base: str = "https://www.youtube.com/feeds/videos.xml"
    site_base: str = "https://www.youtube.com"  # where a handle's channel page is read
    transcripts: bool = True
    languages: list[str] | None = None  # default: the video's own language, then English
    max_new: int = 15  # videos given to yt-dlp per fetch; the rest wait for the next one
    speech_to_text: bool = True  # videos without captions are transcribed (the stt extra)
    speech_model: str = "tiny.en"  # faster-whisper model name or directory

    def validate(self) -> list[str]:
        given = [k for k in ("channel_id", "handle", "playlist_id") if getattr(self, k)]
        if len(given) != 1:
            which = " and ".join(given) if given else "none"
            return [f"channel_id: exactly one of channel_id, handle, playlist_id (got {which})"]
        problems = []
        if self.channel_id and not _CHANNEL_ID.match(self.channel_id):
            problems.append(
                f"channel_id: expected UC and 22 letters, digits, - or _, got {self.channel_id!r}"
            )
        if self.playlist_id and not _PLAYLIST_ID.match(self.playlist_id):
            problems.append(f"playlist_id: not a YouTube playlist id: {self.playlist_id!r}")
        if self.handle and not _HANDLE.match(self.handle):
            problems.append(f"handle: not a YouTube handle: {self.handle!r}")
        for key in ("feed_base", "site_base"):
            if not getattr(self, key).startswith(("http://", "https://")):
                problems.append(f"{key}: must be an http(s) URL")
        if self.max_new < 1:
            problems.append("max_new: must be at least 1")
        return problems

    def describe(self) -> str:
        if self.handle:
            return f"@{self.handle.lstrip('@')}"
        return self.channel_id or f"playlist {self.playlist_id}"

    async def collect(self, ctx: FetchContext) -> Collected:
        deadline = time.monotonic() + 2 * ctx.timeout  # the pipeline allows 3 timeouts in all
        url = await self._feed_url(ctx)
        # Videos still waiting for details are not in a 304, so ask for the whole feed then.
        waiting = any(needs_details(ctx.state, v) for v in ctx.state.get("pending", []))
        try:
            resp = await ctx.http.get(
                url, state=None if waiting else ctx.state, timeout=ctx.timeout
            )
        except FetchError as e:
            if e.status == 404:
                ctx.state.pop("resolved", None)  # a renamed handle resolves afresh next time
                raise FetchError(
                    f"YouTube feed not found (HTTP 404): is {self.describe()} right?", status=404
                ) from None
            raise
        # Taken only now: a failed fetch keeps no state, and the work would be done again.
        transcribed = speech_results(ctx, source_id=self.id, model=self.speech_model)
        if resp.not_modified:
            return Collected(transcribed, http_status=304, not_modified=not transcribed)
        entries = parse_channel_feed(resp.body)
        todo = [e for e in entries if needs_details(ctx.state, e.id)][: self.max_new]
        results = await within(
            {e.id: self._detailed(e, ctx) for e in todo}, deadline - time.monotonic()
        )
        posts = []
        for e in entries:
            result = results.get(e.id)
            if isinstance(result, Post):
                posts.append(result)
                continue
            if isinstance(result, Exception):
                record_failure(ctx, e.id, result)
            posts.append(video_post(e, ctx.state.get("videos", {}).get(e.id)))
        late = sum(1 for e in todo if e.id not in results)
        if late:
            ctx.log.append(f"{late} videos left for the next fetch (time limit)")
        ctx.state["pending"] = [e.id for e in entries if needs_details(ctx.state, e.id, now=1e18)]
        return Collected(merge_transcribed(posts, transcribed), http_status=resp.status)

    async def _detailed(self, entry: FeedVideo, ctx: FetchContext) -> Post:
        info = await ytdlp.extract(
            WATCH + entry.id, flat=False, timeout=ctx.timeout,
            allow_private=getattr(ctx.http, "allow_private", True),
        )  # fmt: skip
        post = video_post(entry, video_record(info), info)
        missing = False
        if self.transcripts:
            post = await with_transcript(post, info, ctx, self.languages)
            missing = transcript_missing(post, info, self.languages)
            if self.speech_to_text and wants_speech(post, info, self.languages):
                queue_speech(post, ctx, source_id=self.id, model=self.speech_model)
        settle(ctx.state, entry.id, info, missing)
        return post

    async def _feed_url(self, ctx: FetchContext) -> str:
        if self.playlist_id:
            return f"{self.feed_base}?{urlencode({'playlist_id': self.playlist_id})}"
        channel_id = self.channel_id or await self._resolve(ctx)
        return f"{self.feed_base}?{urlencode({'channel_id': channel_id})}"

    async def _resolve(self, ctx: FetchContext) -> str:
        """The channel id behind the handle: from its page, else yt-dlp; cached in state."""
        handle = (self.handle or "").lstrip("@")
        cached = ctx.state.get("resolved")
        if isinstance(cached, dict) and cached.get("handle") == handle:
            return str(cached["channel_id"])
        page_url = f"{self.site_base.rstrip('/')}/@{quote(handle)}"
        try:
            resp = await ctx.http.get(page_url, headers=_CONSENT_COOKIE, timeout=ctx.timeout)
        except FetchError as e:
            if e.status == 404:
                raise FetchError(f"no YouTube channel @{handle} (HTTP 404)", status=404) from None
            raise
        channel_id = channel_id_from_page(resp.body)
        if channel_id is None:
            info = await ytdlp.extract(
                f"https://www.youtube.com/@{handle}",
                flat=True,
                timeout=ctx.timeout,
                opts={"playlistend": 1},
                allow_private=getattr(ctx.http, "allow_private", True),
            )
            found = info.get("channel_id")
            if not isinstance(found, str) or not _CHANNEL_ID.match(found):
                raise ParseError(f"could not find the channel id of @{handle}")
            channel_id = found
        ctx.state["resolved"] = {"handle": handle, "channel_id": channel_id}
        return channel_id


# --- pure -------------------------------------------------------------------------------------


def channel_id_from_page(body: bytes) -> str | None:
    """The `UC…` id a channel page declares for itself, or None (a consent wall, say)."""
    for pattern in _PAGE_ID:
        m = pattern.search(body)
        if m:
            return m.group(1).decode("ascii")
    return None


def parse_channel_feed(body: bytes) -> list[FeedVideo]:
    """The videos of a YouTube channel or playlist feed, newest first as YouTube lists them."""
    root = parse_xml(body)
    if root.tag != f"{{{_NS['a']}}}feed":
        raise ParseError(f"not a YouTube feed: root element <{root.tag}>")
    videos: list[FeedVideo] = []
    for entry in root.iterfind("a:entry", _NS):
        vid = _text(entry, "yt:videoId") or (_text(entry, "a:id") or "").removeprefix("yt:video:")
        if not re.fullmatch(r"[A-Za-z0-9_-]{6,20}", vid or ""):
            continue
        group = entry.find("media:group", _NS)
        description = _text(group, "media:description") if group is not None else None
        thumb = group.find("media:thumbnail", _NS) if group is not None else None
        stats = group.find("media:community/media:statistics", _NS) if group is not None else None
        views = stats.get("views") if stats is not None else None
        videos.append(
            FeedVideo(
                id=vid,
                title=_text(entry, "a:title")
                or (_text(group, "media:title") if group is not None else None),
                description=clean_space(description) if description else None,
                author=_text(entry, "a:author/a:name"),
                channel_id=_text(entry, "yt:channelId"),
                published_at=parse_date(_text(entry, "a:published")),
                thumbnail=_thumbnail(thumb),
                views=int(views) if views and views.isdigit() else None,
            )
        )
    return videos


def video_post(
    entry: FeedVideo, record: dict[str, Any] | None, info: dict[str, Any] | None = None
) -> Post:
    """The post for a feed entry. Title and text always come from the feed (it carries the full
    description) and the rest from the state record, so the post reads the same on every fetch
    whether or not yt-dlp was asked this time; `info` only adds counts that are not stored."""
    record = record or {}
    url = WATCH + entry.id
    media = [entry.thumbnail] if entry.thumbnail else []
    media.append(Media(url=url, medium="video", duration=record.get("duration"), role="content"))
    extra: dict[str, Any] = {"views": entry.views, "channel_id": entry.channel_id}
    extra["live_status"] = record.get("live_status")
    if info:
        extra.update(views=info.get("view_count") or entry.views, likes=info.get("like_count"))
    return Post(
        external_id=entry.id,
        url=url,
        title=entry.title,
        text=entry.description,
        author=entry.author,
        kind="video",
        published_at=entry.published_at,
        lang=record.get("lang"),
        media=tuple(media),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def _text(el: Any, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path, _NS)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _thumbnail(el: Any) -> Media | None:
    if el is None or not el.get("url"):
        return None
    w, h = el.get("width", ""), el.get("height", "")
    return Media(
        url=el.get("url"),
        medium="image",
        width=int(w) if w.isdigit() else None,
        height=int(h) if h.isdigit() else None,
        role="thumbnail",
    )
