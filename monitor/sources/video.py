"""The `video` source: any page yt-dlp can list or extract, details only for entries not seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from monitor import ytdlp
from monitor.errors import ParseError
from monitor.http import FetchError
from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext, SourceConfig
from monitor.text import clean_space, parse_date, to_utc_iso
from monitor.transcripts import merge_transcribed

SEEN_KEPT = 500  # video ids remembered per source; far more than any listing shows at once
MAX_TRIES = 3  # details (or captions) attempted this many times before a video is left as is
MAX_LIVE_TRIES = 96  # a live or upcoming stream is looked at again, about a day's worth of polls
_LIVE = ("is_live", "is_upcoming", "post_live")
# Extractors whose media URL is the page's own link to the file, stable between fetches (a
# site extractor's format URLs are signed and expire, so they would rewrite the post each time).
_STABLE_MEDIA = ("html5", "generic")
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class VideoSource(SourceConfig):
    """`type = "video"`: a channel, profile, playlist or plain page with a video, via yt-dlp."""

    type_name: ClassVar[str] = "video"
    url: str
    transcripts: bool = True
    languages: list[str] | None = None  # default: the video's own language, then English
    max_new: int = 15  # videos extracted in full per fetch; the rest wait for the next one
    speech_to_text: bool = True  # videos without captions are transcribed (the stt extra)
    speech_model: str = "tiny.en"  # faster-whisper model name or directory

    def validate(self) -> list[str]:
        problems = []
        if urlsplit(self.url).scheme not in ("http", "https"):
            problems.append(f"url: must be an http(s) URL, got {self.url!r}")
        if self.max_new < 1:
            problems.append("max_new: must be at least 1")
        return problems

    async def collect(self, ctx: FetchContext) -> Collected:
        deadline = time.monotonic() + 2 * ctx.timeout  # the pipeline allows 3 timeouts in all
        listing = await ytdlp.extract(
            self.url, flat=True, timeout=ctx.timeout, opts={"playlistend": self.max_new * 4},
            **self._guard(ctx),
        )  # fmt: skip
        transcribed = self._speech_results(ctx)  # after the listing: a failed fetch keeps none
        if listing.get("_type") not in ("playlist", "multi_video"):
            # One video: the listing is already the full extraction.
            post = info_post(listing, self.url)
            if needs_details(ctx.state, post.external_id):
                if self.transcripts:
                    post = await self._transcribed(post, listing, ctx)
                settle(ctx.state, post.external_id, listing, self._missing(post, listing))
            return Collected(merge_transcribed([post], transcribed))
        entries = [e for e in listing.get("entries") or [] if isinstance(e, dict)]
        todo = [e for e in entries if needs_details(ctx.state, entry_id(e))][: self.max_new]
        jobs = {entry_id(e): self._detailed(e, ctx) for e in todo}
        results = await within(jobs, deadline - time.monotonic())
        posts: list[Post] = []
        for e in todo:
            vid = entry_id(e)
            result = results.get(vid)
            if isinstance(result, Post):
                posts.append(result)
            elif isinstance(result, Exception):
                record_failure(ctx, vid, result)
        late = len(todo) - len(results)
        if late:
            ctx.log.append(f"{late} videos left for the next fetch (time limit)")
        return Collected(merge_transcribed(posts, transcribed))

    def _guard(self, ctx: FetchContext) -> dict[str, Any]:
        # The configured page's host is trusted as given; whatever else yt-dlp is led to is not.
        return {
            "allow_private": getattr(ctx.http, "allow_private", True),
            "trusted_host": urlsplit(self.url).hostname,
        }

    async def _detailed(self, entry: dict[str, Any], ctx: FetchContext) -> Post:
        if _is_full(entry):
            info = entry  # a page of several HTML5 videos lists them already extracted
        else:
            url = entry.get("url") or entry.get("webpage_url")
            if not isinstance(url, str):
                raise ParseError(f"listing entry {entry_id(entry)} has no URL")
            info = await ytdlp.extract(url, flat=False, timeout=ctx.timeout, **self._guard(ctx))
        post = info_post(info, self.url)
        if self.transcripts:
            post = await self._transcribed(post, info, ctx)
        settle(ctx.state, entry_id(entry), info, self._missing(post, info))
        return post

    async def _transcribed(self, post: Post, info: dict[str, Any], ctx: FetchContext) -> Post:
        from monitor.transcripts import queue_speech, wants_speech, with_transcript

        post = await with_transcript(post, info, ctx, self.languages, configured_url=self.url)
        if self.speech_to_text and wants_speech(post, info, self.languages):
            queue_speech(post, ctx, source_id=self.id, model=self.speech_model)
        return post

    def _speech_results(self, ctx: FetchContext) -> list[Post]:
        from monitor.transcripts import speech_results

        return speech_results(ctx, source_id=self.id, model=self.speech_model)

    def _missing(self, post: Post, info: dict[str, Any]) -> bool:
        return self.transcripts and transcript_missing(post, info, self.languages)


def _is_full(entry: dict[str, Any]) -> bool:
    return entry.get("_type", "video") == "video" and bool(
        entry.get("formats") or entry.get("subtitles") or entry.get("automatic_captions")
    )


# --- pure: yt-dlp info → post ---------------------------------------------------------------


def entry_id(info: dict[str, Any]) -> str:
    vid = info.get("id")
    if isinstance(vid, str | int) and str(vid):
        return str(vid)
    return str(info.get("url") or info.get("webpage_url") or "")


def info_post(info: dict[str, Any], page_url: str | None = None) -> Post:
    """The post for one video as yt-dlp describes it."""
    url = _str(info.get("webpage_url")) or _str(info.get("original_url")) or page_url
    media: list[Media] = []
    thumb = _str(info.get("thumbnail"))
    if thumb:
        media.append(Media(url=thumb, medium="image", role="thumbnail"))
    direct = _str(info.get("url")) if info.get("extractor") in _STABLE_MEDIA else None
    if direct or url:
        media.append(
            Media(
                url=direct or url or "",
                medium="video",
                type=_mime(info.get("ext")) if direct else None,
                # A site's picked format (and so its size) varies between extractions.
                width=_int(info.get("width")) if direct else None,
                height=_int(info.get("height")) if direct else None,
                duration=_float(info.get("duration")),
                role="content",
            )
        )
    description = _str(info.get("description"))
    return Post(
        external_id=entry_id(info),
        url=url,
        title=_str(info.get("title")),
        text=clean_space(description) if description else None,
        author=_str(info.get("channel")) or _str(info.get("uploader")) or _str(info.get("creator")),
        kind="video",
        published_at=published(info),
        lang=_str(info.get("language")),
        media=tuple(media),
        extra={
            k: info[k]
            for k in ("view_count", "like_count", "live_status", "channel_id", "extractor")
            if info.get(k) is not None
        },
    )


def published(info: dict[str, Any]) -> str | None:
    for key in ("timestamp", "release_timestamp"):
        ts = info.get(key)
        if isinstance(ts, int | float) and not isinstance(ts, bool):
            try:
                return to_utc_iso(datetime.fromtimestamp(ts, UTC))
            except (OverflowError, OSError, ValueError):
                pass
    day = info.get("upload_date") or info.get("release_date")
    if isinstance(day, str) and len(day) == 8 and day.isdigit():
        return parse_date(f"{day[:4]}-{day[4:6]}-{day[6:]}")
    return None


def video_record(info: dict[str, Any]) -> dict[str, Any]:
    """What source state keeps about a detailed video: enough to build its post the same way
    on later fetches without asking yt-dlp again."""
    record: dict[str, Any] = {}
    for key, value in (
        ("duration", _float(info.get("duration"))),
        ("lang", _str(info.get("language"))),
        ("live_status", _str(info.get("live_status"))),
    ):
        if value is not None:
            record[key] = value
    return record


def transcript_missing(post: Post, info: dict[str, Any], languages: list[str] | None) -> bool:
    """Captions were listed but did not arrive (a 429, a timeout): worth another try."""
    from monitor.transcripts import choose_track

    return post.transcript is None and choose_track(info, languages) is not None


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _mime(ext: Any) -> str | None:
    return {"mp4": "video/mp4", "webm": "video/webm", "m3u8": "application/x-mpegURL"}.get(str(ext))


# --- state: which videos are done -----------------------------------------------------------


def needs_details(state: dict[str, Any], vid: str, now: float | None = None) -> bool:
    """True for a video never detailed, or one to look at again (failed, live, upcoming)."""
    record = state.get("videos", {}).get(vid)
    if record is None:
        return True
    if not record.get("retry"):
        return False
    return (now if now is not None else time.time()) >= record.get("after", 0)


def settle(state: dict[str, Any], vid: str, info: dict[str, Any], missing: bool) -> None:
    """Record a detailed video; look again later while it is live or upcoming (captions come
    after the stream) or its captions did not arrive, a bounded number of times."""
    old = state.get("videos", {}).get(vid) or {}
    record = video_record(info)
    live = record.get("live_status") in _LIVE
    if live or missing:
        tries = int(old.get("tries", 0)) + 1
        if tries < (MAX_LIVE_TRIES if live else MAX_TRIES):
            record.update(retry=True, tries=tries)
            when = info.get("release_timestamp")
            if record.get("live_status") == "is_upcoming" and isinstance(when, int | float):
                record["after"] = float(when)
    remember(state, vid, record)


def remember(state: dict[str, Any], vid: str, record: dict[str, Any]) -> None:
    videos: dict[str, Any] = state.setdefault("videos", {})
    videos.pop(vid, None)  # re-inserted last, so eviction drops the oldest first
    videos[vid] = record
    while len(videos) > SEEN_KEPT:
        del videos[next(iter(videos))]


def record_failure(ctx: FetchContext, vid: str, error: BaseException) -> None:
    """Count a failed extraction; after MAX_TRIES the video is no longer retried."""
    old = ctx.state.get("videos", {}).get(vid) or {}
    tries = int(old.get("tries", 0)) + 1
    record = {**old, "tries": tries, "retry": tries < MAX_TRIES}
    if tries >= MAX_TRIES:
        record.pop("after", None)
    remember(ctx.state, vid, record)
    giving_up = "" if tries < MAX_TRIES else ", giving up"
    ctx.log.append(f"details for video {vid} failed (try {tries}{giving_up}): {error}")


async def within(jobs: dict[str, Awaitable[T]], budget: float) -> dict[str, T | Exception]:
    """Run `jobs` together for at most `budget` seconds; results or FetchError/ParseError by key.

    Jobs still running at the end are cancelled (a cancelled extraction kills its worker) and
    left out of the result. Any other exception is a bug and propagates.
    """
    if not jobs:
        return {}
    tasks = {key: asyncio.ensure_future(job) for key, job in jobs.items()}
    done, pending = await asyncio.wait(tasks.values(), timeout=max(budget, 0.1))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    out: dict[str, T | Exception] = {}
    for key, task in tasks.items():
        if task not in done:
            continue
        exc = task.exception()
        if exc is None:
            out[key] = task.result()
        elif isinstance(exc, FetchError | ParseError):
            out[key] = exc
        else:
            raise exc
    return out
