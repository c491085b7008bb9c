"""Captions for a video: pick a track from yt-dlp's info, fetch it, parse it onto the post."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from monitor.captions import parse_captions, transcript_text
from monitor.errors import ParseError
from monitor.http import FetchError, same_origin
from monitor.models import Media, Post

if TYPE_CHECKING:
    from monitor.sources.base import FetchContext

# Best first. WebVTT and json3 keep YouTube's timing exactly; srt/ttml are what other sites give.
FORMAT_ORDER = ("vtt", "json3", "srv3", "srt", "ttml", "srv2", "srv1", "dfxp")
_KINDS = ("subtitles", "automatic_captions")
_MORE = re.compile(r" and (\d+) more$")
SPEECH_KEPT = 50  # videos waiting for speech to text per source
_POST_FIELDS = ("external_id", "url", "title", "text", "author", "kind", "published_at", "lang")


def choose_track(
    info: dict[str, Any], languages: list[str] | None = None
) -> tuple[str, str, str] | None:
    """(url, ext, language) of the caption track to read, or None when there is none.

    Human subtitles come before automatic captions; within each, the configured languages in
    order. A language matches its regional variants (`en` finds `en-US`) and, for automatic
    captions, YouTube's original-language track (`de-orig`) comes before its machine
    translations. Without configured languages: the video's own language, then English, then
    any human subtitle track (an HTML5 <track> often has no language the page declares).
    """
    found = _choose(info, languages)
    if found is None:
        return None
    track, ext, lang = found
    return str(track.get("url") or ""), ext, lang


def default_languages(info: dict[str, Any]) -> list[str]:
    own = info.get("language")
    langs = [own] if isinstance(own, str) and own else []
    return [*langs, "en"] if "en" not in langs else langs


async def with_transcript(
    post: Post,
    info: dict[str, Any],
    ctx: FetchContext,
    languages: list[str] | None = None,
    configured_url: str | None = None,
) -> Post:
    """`post` with the transcript and segments of its best caption track.

    The track is fetched through the monitor's own client (size cap, timeouts, politeness),
    not through yt-dlp. A video without captions, or whose captions cannot be fetched or read,
    comes back unchanged and the fetch summary says so once, whatever the number of videos.
    """
    found = _choose(info, languages)
    if found is None:
        wanted = ", ".join(languages or default_languages(info))
        _notice(ctx, f"transcripts: no captions in {wanted} for", post.url or post.external_id)
        return post
    track, ext, _ = found
    try:
        if isinstance(track.get("data"), str):  # some extractors inline the file
            body = track["data"].encode("utf-8")
        else:
            # A URL from yt-dlp's reading of a page is content, not configuration — unless it
            # is on the configured page's own origin, which the user named (as for redirects).
            trusted = configured_url is not None and same_origin(track["url"], configured_url)
            resp = await ctx.http.get(track["url"], timeout=ctx.timeout, trusted=trusted)
            body = resp.body
        if not body.strip():
            # YouTube answers an empty 200 when it wants a proof-of-origin token on the URL.
            raise ParseError("the caption URL answered an empty body")
        segments = parse_captions(body, ext)
    except (FetchError, ParseError) as e:
        _notice(ctx, f"transcripts: captions unreadable ({e}) for", post.url or post.external_id)
        return post
    if not segments:
        _notice(ctx, "transcripts: empty captions for", post.url or post.external_id)
        return post
    return dataclasses.replace(post, transcript=transcript_text(segments), segments=tuple(segments))


def _choose(
    info: dict[str, Any], languages: list[str] | None
) -> tuple[dict[str, Any], str, str] | None:
    wanted: list[str] = []
    for w in languages or default_languages(info):
        # `en-GB` falls back to any English before the next language is tried.
        for candidate in (w.lower(), w.lower().split("-")[0]):
            if candidate not in wanted:
                wanted.append(candidate)
    for kind in _KINDS:
        tracks = info.get(kind)
        if not isinstance(tracks, dict):
            continue
        for lang in wanted:
            for key in _matching_keys(tracks, lang, automatic=kind == "automatic_captions"):
                best = _best_format(tracks[key])
                if best is not None:
                    return best[0], best[1], str(key)
    if languages:
        return None
    # Nothing in the default languages: any human track beats none. Never an automatic one,
    # since YouTube lists a machine translation into every language there.
    tracks = info.get("subtitles")
    if isinstance(tracks, dict):
        for key, formats in tracks.items():
            if key != "live_chat" and (best := _best_format(formats)) is not None:
                return best[0], best[1], str(key) if key else "und"
    return None


def _matching_keys(tracks: dict[Any, Any], lang: str, *, automatic: bool) -> list[Any]:
    keys = [k for k in tracks if isinstance(k, str)]
    exact = [k for k in keys if k.lower() == lang]
    orig = [k for k in keys if k.lower() == f"{lang}-orig"]
    regional = sorted(k for k in keys if k.lower().startswith(f"{lang}-") and k not in orig)
    return [*orig, *exact, *regional] if automatic else [*exact, *orig, *regional]


def _best_format(formats: Any) -> tuple[dict[str, Any], str] | None:
    if not isinstance(formats, list):
        return None
    ranked: list[tuple[int, dict[str, Any], str]] = []
    for f in formats:
        if not isinstance(f, dict):
            continue
        ext = _ext(f)
        if ext not in FORMAT_ORDER:
            continue
        url = f.get("url")
        usable_url = isinstance(url, str) and urlsplit(url).scheme in ("http", "https")
        # An HLS subtitle playlist (.m3u8) is a list of pieces, not a caption file.
        if usable_url and (str(f.get("protocol", "")).startswith("m3u8") or ".m3u8" in url):
            continue
        if usable_url or isinstance(f.get("data"), str):
            ranked.append((FORMAT_ORDER.index(ext), f, ext))
    if not ranked:
        return None
    _, best, ext = min(ranked, key=lambda r: r[0])
    return best, ext


def _ext(f: dict[str, Any]) -> str:
    ext = f.get("ext")
    if isinstance(ext, str) and ext:
        return ext.lower()
    path = urlsplit(str(f.get("url") or "")).path
    return path.rpartition(".")[2].lower() if "." in path else ""


def _notice(ctx: FetchContext, what: str, where: str) -> None:
    """One line per kind of problem: the first video named, the others counted."""
    for i, line in enumerate(ctx.log):
        if line.startswith(what + " "):
            m = _MORE.search(line)
            more = int(m.group(1)) + 1 if m else 1
            head = line[: m.start()] if m else line
            ctx.log[i] = f"{head} and {more} more"
            return
    ctx.log.append(f"{what} {where}")


# --- speech to text, for videos without captions ----------------------------------------------


def queue_speech(post: Post, ctx: FetchContext, *, source_id: str, model: str) -> None:
    """Hand a video without captions to the speech-to-text worker and return at once.

    The post is kept in source state, so a later fetch sends it again with its transcript
    (`speech_results`), and a job lost with a restart is queued again. Without the `stt` extra,
    the fetch summary says once what would enable it.
    """
    from monitor import stt

    if not stt.available():
        line = f"transcripts: videos without captions need the stt extra ({stt.EXTRA_HINT})"
        if line not in ctx.log:
            ctx.log.append(line)
        return
    if not post.url:
        return
    waiting: dict[str, Any] = ctx.state.setdefault("speech", {})
    waiting[post.external_id] = _post_state(post)
    while len(waiting) > SPEECH_KEPT:
        del waiting[next(iter(waiting))]
    stt.transcriber().submit(
        f"{source_id}:{post.external_id}", post.url, model=model, language=post.lang
    )
    _notice(ctx, "transcripts: speech to text started in the background for", post.url)


def wants_speech(post: Post, info: dict[str, Any], languages: list[str] | None) -> bool:
    """No transcript and no caption track to wait for: only speech to text can give one."""
    live = info.get("live_status") in ("is_live", "is_upcoming", "post_live")
    return post.transcript is None and not live and _choose(info, languages) is None


def merge_transcribed(posts: list[Post], transcribed: list[Post]) -> list[Post]:
    """`posts` with the transcripts speech to text made; those not among them come first."""
    by_id = {p.external_id: p for p in transcribed}
    merged = [
        dataclasses.replace(p, transcript=t.transcript, segments=t.segments)
        if (t := by_id.pop(p.external_id, None)) is not None
        else p
        for p in posts
    ]
    return [*by_id.values(), *merged]


def speech_results(ctx: FetchContext, *, source_id: str, model: str) -> list[Post]:
    """Posts whose speech to text has finished since the last fetch, with their transcripts."""
    waiting = ctx.state.get("speech")
    if not waiting:
        return []
    from monitor import stt

    if not stt.available():
        return []
    worker = stt.transcriber()
    done: list[Post] = []
    for vid, saved in list(waiting.items()):
        key = f"{source_id}:{vid}"
        result = worker.take(key)
        if result is None:
            if not worker.busy(key):  # this process never had it: queued before a restart
                worker.submit(key, saved["url"], model=model, language=saved.get("lang"))
            continue
        del waiting[vid]
        if isinstance(result, str):
            _notice(ctx, f"transcripts: speech to text failed ({result}) for", saved["url"])
        elif result:
            post = _post_from_state(saved)
            done.append(
                dataclasses.replace(
                    post, transcript=transcript_text(result), segments=tuple(result)
                )
            )
    if not waiting:
        ctx.state.pop("speech", None)
    return done


def _post_state(post: Post) -> dict[str, Any]:
    saved = {k: getattr(post, k) for k in _POST_FIELDS}
    saved["media"] = [m.to_dict() for m in post.media]
    return saved


def _post_from_state(saved: dict[str, Any]) -> Post:
    fields = {k: saved.get(k) for k in _POST_FIELDS}
    return Post(**fields, media=tuple(Media(**m) for m in saved.get("media", [])))
