"""The `x` source: one X account, read through the X API v2 or a Nitter instance's RSS."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext, SourceConfig

BACKENDS = ("api", "nitter")
MAX_RESULTS = 1000  # ten pages of 100: the most a first fetch reads
TRANSCRIBED_KEPT = 500  # post ids remembered as done, so a Nitter feed's repeats are skipped
BACKLOG_KEPT = 50  # video posts waiting for their transcript (no time left in their fetch)
_HANDLE = re.compile(r"^@?[A-Za-z0-9_]{1,50}$")


@dataclass(frozen=True, kw_only=True)
class XSource(SourceConfig):
    """`type = "x"`: an account's posts, reposts attributed to their authors, videos as video."""

    type_name: ClassVar[str] = "x"
    handle: str
    backend: str = "api"  # api | nitter
    bearer_token: str | None = None  # required for api
    api_base: str = "https://api.x.com/2"
    instance: str | None = None  # required for nitter: the instance's base URL
    transcripts: bool = False
    languages: list[str] | None = None
    max_results: int = 20  # per API request, and how many posts the first fetch reads
    include_replies: bool = True
    include_retweets: bool = True

    @property
    def username(self) -> str:
        return self.handle.strip().lstrip("@")

    def validate(self) -> list[str]:
        problems = []
        if not _HANDLE.match(self.handle.strip()):
            problems.append(f"handle: not an X handle (letters, digits, _): {self.handle!r}")
        if self.backend not in BACKENDS:
            problems.append(f'backend: must be "api" or "nitter", got {self.backend!r}')
        if self.backend == "api":
            if not (self.bearer_token or "").strip():
                problems.append(
                    'bearer_token: required with backend = "api" (an X API v2 app bearer '
                    'token, best given as "${X_BEARER_TOKEN}")'
                )
            if urlsplit(self.api_base).scheme not in ("http", "https"):
                problems.append(f"api_base: must be an http(s) URL, got {self.api_base!r}")
        if self.backend == "nitter":
            if not self.instance:
                problems.append(
                    'instance: required with backend = "nitter" (the base URL of a Nitter '
                    'instance, e.g. "https://nitter.example.org")'
                )
            elif urlsplit(self.instance).scheme not in ("http", "https"):
                problems.append(f"instance: must be an http(s) URL, got {self.instance!r}")
        if not 1 <= self.max_results <= MAX_RESULTS:
            problems.append(f"max_results: must be between 1 and {MAX_RESULTS}")
        if self.languages is not None and not all(lang.strip() for lang in self.languages):
            problems.append("languages: language codes must not be empty")
        return problems

    def describe(self) -> str:
        if self.backend == "nitter":
            return f"@{self.username} via {self.instance}"
        return f"@{self.username} via the X API"

    async def collect(self, ctx: FetchContext) -> Collected:
        started = time.monotonic()
        if self.backend == "nitter":
            from monitor.sources.x_nitter import collect_nitter

            collected = await collect_nitter(self, ctx)
        else:
            from monitor.sources.x_api import collect_api

            collected = await collect_api(self, ctx)
        if self.transcripts:
            # The pipeline gives the whole collection 3 timeouts; captions get what the
            # requests left of the first 2, and the rest waits in a backlog for the next fetch.
            budget_end = started + 2 * ctx.timeout
            posts = await add_transcripts(collected.posts, ctx, self.languages, budget_end)
            if len(posts) > len(collected.posts):
                collected.not_modified = False
            collected.posts = posts
        return collected


# --- transcripts -----------------------------------------------------------------------------


async def extract_info(url: str, timeout: float, allow_private: bool = False) -> dict[str, Any]:
    """yt-dlp's full info for a post's video (the seam tests replace: no network there)."""
    from monitor import ytdlp

    return await ytdlp.extract(url, flat=False, timeout=timeout, allow_private=allow_private)


async def attach_transcript(
    post: Post, info: dict[str, Any], ctx: FetchContext, languages: list[str] | None
) -> Post:
    from monitor.transcripts import with_transcript

    return await with_transcript(post, info, ctx, languages)


async def add_transcripts(
    posts: list[Post], ctx: FetchContext, languages: list[str] | None, budget_end: float
) -> list[Post]:
    """`posts` with captions on their videos, plus backlog posts that got theirs this time.

    Each video is tried once: a failure is a notice, never the source's failure.
    """
    done = [str(i) for i in ctx.state.get("transcribed", [])]
    done_set = set(done)
    batch = {p.external_id for p in posts}
    backlog = [p for d in ctx.state.get("transcript_backlog", []) if (p := _from_state(d))]
    queue = [p for p in posts if p.kind == "video" and p.external_id not in done_set]
    queue += [p for p in backlog if p.external_id not in done_set | batch]
    results: dict[str, Post] = {}
    waiting: list[Post] = []
    for post in queue:
        left = budget_end - time.monotonic()
        if left < 1 or not post.url:
            waiting.append(post)
            continue
        try:
            extraction = extract_info(
                post.url, min(ctx.timeout, left), getattr(ctx.http, "allow_private", True)
            )
            info = await asyncio.wait_for(extraction, left)
            left = budget_end - time.monotonic()
            results[post.external_id] = await asyncio.wait_for(
                attach_transcript(post, info, ctx, languages), max(left, 1.0)
            )
        except asyncio.CancelledError:
            raise
        except ImportError as e:
            # Not installed: nothing is marked done, so the videos are tried again once it is.
            ctx.log.append(f"transcripts are unavailable: {e}")
            waiting.extend(p for p in queue[queue.index(post) :] if p.external_id not in batch)
            break
        except Exception as e:  # noqa: BLE001 - a video without captions is no failed source
            reason = "timed out" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
            ctx.log.append(f"no transcript for {post.url}: {reason}")
        done.append(post.external_id)
        done_set.add(post.external_id)
    late = [p for p in waiting if p.external_id in batch]
    if late:
        ctx.log.append(f"{len(late)} video transcripts left for the next fetch (time limit)")
    ctx.state["transcribed"] = done[-TRANSCRIBED_KEPT:]
    if waiting:
        ctx.state["transcript_backlog"] = [_to_state(p) for p in waiting][-BACKLOG_KEPT:]
    else:
        ctx.state.pop("transcript_backlog", None)
    out = [results.get(p.external_id, p) for p in posts]
    out += [results[p.external_id] for p in backlog if p.external_id in results]
    return out


def _to_state(post: Post) -> dict[str, Any]:
    d = dataclasses.asdict(post)
    d["media"] = [m.to_dict() for m in post.media]
    d.pop("segments", None)
    return d


def _from_state(d: Any) -> Post | None:
    # State written by another version may not fit: a lost backlog entry beats a failed source.
    fields = {f.name for f in dataclasses.fields(Post)} - {"media", "segments"}
    try:
        media = tuple(Media(**m) for m in d.get("media") or ())
        return Post(**{k: v for k, v in d.items() if k in fields}, media=media)
    except (AttributeError, TypeError):
        return None
