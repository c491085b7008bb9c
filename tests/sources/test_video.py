"""The `video` source: end to end through yt-dlp on 127.0.0.1, listings, state and the pipeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor import sources as registry
from monitor import ytdlp
from monitor.archive.sqlite import Store
from monitor.config import parse_config
from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.models import Media
from monitor.pipeline import run_source
from monitor.sources.base import Collected, FetchContext
from monitor.sources.video import (
    SEEN_KEPT,
    VideoSource,
    info_post,
    needs_details,
    remember,
    within,
)
from tests.conftest import FIXTURES
from tests.origin import Origin, Route

VIDEO = FIXTURES / "video"
# The smallest MP4 a player would sniff: an `ftyp` box. yt-dlp never downloads it here.
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
TWO_VIDEOS = b"""<!doctype html><html><head><title>Two clips</title></head><body>
<video src="a.mp4"><track kind="subtitles" srclang="en" src="a.vtt"></video>
<video src="b.mp4"></video></body></html>"""
A_VTT = b"WEBVTT\n\n00:00:02.000 --> 00:00:03.000\nfirst clip speaking\n"


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        html = {"Content-Type": "text/html; charset=utf-8"}
        o.routes["/briefing.html"] = Route((VIDEO / "briefing.html").read_bytes(), headers=html)
        o.routes["/briefing.en.vtt"] = Route(
            (VIDEO / "briefing.en.vtt").read_bytes(), headers={"Content-Type": "text/vtt"}
        )
        o.routes["/clip.mp4"] = Route(MP4, headers={"Content-Type": "video/mp4"})
        o.routes["/two.html"] = Route(TWO_VIDEOS, headers=html)
        o.routes["/a.vtt"] = Route(A_VTT, headers={"Content-Type": "text/vtt"})
        o.routes["/text.html"] = Route(b"<html><body><p>no video</p></body></html>", headers=html)
        yield o
    ytdlp.shutdown()


async def collect(source: VideoSource, state: dict[str, Any]) -> tuple[Collected, list[str]]:
    # The origin is on loopback, and caption URLs are content: the guard must allow it.
    async with Http(allow_private=True) as http:
        ctx = FetchContext(http=http, state=state, timeout=20)
        return await source.collect(ctx), ctx.log


def video_source(url: str, **kw: Any) -> VideoSource:
    kw.setdefault("speech_to_text", False)  # tests/test_stt.py covers it
    return VideoSource(id="page", type="video", url=url, **kw)


# --- end to end through yt-dlp ----------------------------------------------------------------


async def test_html5_video_page_gives_a_post_with_its_caption_transcript(origin: Origin):
    page = origin.url("/briefing.html")
    collected, log = await collect(video_source(page), {})
    assert log == []
    (post,) = collected.posts
    assert post.kind == "video"
    assert post.url == page
    assert post.title and post.title.startswith("Press briefing on European security")
    assert Media(url=origin.url("/clip.mp4"), medium="video", type="video/mp4", role="content") in (
        post.media
    )
    assert post.transcript == (
        "Good afternoon, and welcome to the weekly briefing.\n"
        "We start with the situation on the eastern flank.\n"
        "Any deployment of NATO troops to Ukraine is off the table.\n"
        "Next question, please."
    )
    assert [(s.start, s.end) for s in post.segments] == [
        (1.0, 4.0),
        (4.5, 8.0),
        (12.5, 16.0),
        (16.5, 19.0),
    ]


async def test_captions_are_fetched_once_per_video(origin: Origin):
    state: dict[str, Any] = {}
    before = len(origin.gets("/briefing.en.vtt"))
    first, _ = await collect(video_source(origin.url("/briefing.html")), state)
    second, _ = await collect(video_source(origin.url("/briefing.html")), state)
    assert len(origin.gets("/briefing.en.vtt")) == before + 1
    # The page is still read each time, so an edited title becomes a new version.
    assert second.posts[0].title == first.posts[0].title
    assert second.posts[0].transcript is None  # the archive keeps the one it has


async def test_page_with_two_videos_is_a_listing_of_already_extracted_entries(origin: Origin):
    collected, log = await collect(video_source(origin.url("/two.html")), {})
    assert len(collected.posts) == 2
    first, second = collected.posts
    assert first.transcript == "first clip speaking"
    assert second.transcript is None
    assert log == [f"transcripts: no captions in en for {second.url}"]


async def test_page_without_a_video_fails_the_source_with_a_clear_reason(origin: Origin):
    with pytest.raises(ParseError, match="Unsupported URL"):
        await collect(video_source(origin.url("/text.html")), {})


async def test_alert_on_words_said_in_the_video_has_the_caption_offset_and_a_media_fragment_link(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(registry.TYPES, "video", "monitor.sources.video:VideoSource")
    config = parse_config(
        {
            "monitor": {"database": str(tmp_path / "m.db"), "timeout": "20s"},
            "sources": {
                "briefing": {
                    "type": "video",
                    "url": origin.url("/briefing.html"),
                    "speech_to_text": False,
                }
            },
            "alerts": {"troops": {"query": "NATO troops Ukraine", "notify": ["hook"]}},
            "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        },
        env={},
    )
    store = Store(config.database)
    try:
        store.sync_sources((s.id, s.type, s.describe()) for s in config.sources.values())
        async with Http(allow_private=True) as http:
            result = await run_source(config.sources["briefing"], config, store, http)
        assert result.ok, result.error
        assert result.new == 1
        with store.transaction() as db:
            match = db.execute("SELECT offset, snippet FROM matches").fetchone()
            payload = json.loads(db.execute("SELECT payload FROM deliveries").fetchone()[0])
            segments = db.execute('SELECT start, "end", text FROM transcript_segments').fetchall()
        assert match["offset"] == pytest.approx(12.5, abs=1.0)
        assert "[NATO] [troops] to [Ukraine]" in match["snippet"]
        assert payload["offset"] == match["offset"]
        assert payload["link"] == origin.url("/briefing.html") + "#t=12"
        assert payload["post"]["kind"] == "video"
        assert len(segments) == 4
    finally:
        store.close()


# --- listings, with yt-dlp replaced -----------------------------------------------------------


class FakeExtract:
    def __init__(self, listing: dict[str, Any]) -> None:
        self.listing = listing
        self.calls: list[tuple[str, bool]] = []
        self.fail: set[str] = set()

    async def __call__(
        self, url: str, *, flat: bool, timeout: float, opts: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        self.calls.append((url, flat))
        if flat:
            return self.listing
        if url in self.fail:
            raise FetchError("yt-dlp: HTTP Error 403: Forbidden", 403)
        vid = url.rsplit("/", 1)[-1]
        return {
            "id": vid,
            "title": f"Clip {vid}",
            "description": "A short clip.",
            "webpage_url": url,
            "extractor": "tiktok",
            "url": f"https://cdn.example/{vid}.mp4?signature=changes-every-time",
            "thumbnail": f"https://cdn.example/{vid}.jpg",
            "duration": 12,
            "timestamp": 1767225600,
            "uploader": "newsroom",
            "subtitles": {},
        }


def listing(n: int) -> dict[str, Any]:
    return {
        "_type": "playlist",
        "id": "newsroom",
        "entries": [
            {"_type": "url", "id": f"v{i}", "url": f"https://videos.example/v/v{i}"}
            for i in range(n)
        ],
    }


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeExtract:
    f = FakeExtract(listing(5))
    monkeypatch.setattr(ytdlp, "extract", f)
    return f


async def test_listing_is_flat_and_only_new_entries_are_extracted(fake: FakeExtract):
    state: dict[str, Any] = {}
    src = video_source("https://videos.example/@newsroom", max_new=3, transcripts=False)
    first, _ = await collect(src, state)
    assert fake.calls[0] == ("https://videos.example/@newsroom", True)
    assert [p.external_id for p in first.posts] == ["v0", "v1", "v2"]
    fake.calls.clear()
    fake.listing = listing(6)  # one new video at the end, two still waiting
    second, _ = await collect(src, state)
    assert [p.external_id for p in second.posts] == ["v3", "v4", "v5"]
    assert [flat for _, flat in fake.calls] == [True, False, False, False]


async def test_listed_video_post_has_its_details_and_no_expiring_media_url(fake: FakeExtract):
    collected, _ = await collect(video_source("https://videos.example/@newsroom", max_new=1), {})
    post = collected.posts[0]
    assert post.title == "Clip v0" and post.text == "A short clip." and post.author == "newsroom"
    assert post.published_at == "2026-01-01T00:00:00Z"
    assert post.media == (
        Media(url="https://cdn.example/v0.jpg", medium="image", role="thumbnail"),
        Media(url="https://videos.example/v/v0", medium="video", duration=12.0, role="content"),
    )


async def test_failed_entry_is_retried_and_the_others_are_stored(fake: FakeExtract):
    fake.fail.add("https://videos.example/v/v1")
    state: dict[str, Any] = {}
    src = video_source("https://videos.example/@newsroom", transcripts=False)
    collected, log = await collect(src, state)
    assert [p.external_id for p in collected.posts] == ["v0", "v2", "v3", "v4"]
    assert log == ["details for video v1 failed (try 1): yt-dlp: HTTP Error 403: Forbidden"]
    fake.fail.clear()
    fake.calls.clear()
    again, _ = await collect(src, state)
    assert [p.external_id for p in again.posts] == ["v1"]


async def test_listing_failure_fails_the_source(fake: FakeExtract, monkeypatch):
    async def broken(*args: Any, **kw: Any) -> dict[str, Any]:
        raise FetchError("yt-dlp: HTTP Error 429: Too Many Requests", 429)

    monkeypatch.setattr(ytdlp, "extract", broken)
    with pytest.raises(FetchError, match="429"):
        await collect(video_source("https://videos.example/@newsroom"), {})


# --- the pieces -------------------------------------------------------------------------------


def test_info_post_dates_from_timestamp_else_upload_date():
    assert info_post({"id": "a", "timestamp": 0}).published_at == "1970-01-01T00:00:00Z"
    assert info_post({"id": "a", "upload_date": "20240131"}).published_at == "2024-01-31T00:00:00Z"
    assert info_post({"id": "a", "upload_date": "2024"}).published_at is None
    assert info_post({"id": "a", "timestamp": 1e20}).published_at is None


def test_info_post_of_the_real_youtube_info_json(realdata: Path):
    info = json.loads(
        (realdata / "youtube/yt-dlp-info-json-youtube-2024-anonymized.json").read_text("utf-8")
    )
    post = info_post(info)
    assert post.external_id == "ABC123"
    assert post.url == "https://www.youtube.com/watch?v=ABC123"
    assert post.author == "PinchflatTestChannel" and post.lang == "en"
    assert post.published_at == "2021-07-20T00:00:00Z"
    video = [m for m in post.media if m.role == "content"]
    assert video == [Media(url=post.url, medium="video", duration=582.0, role="content")]


def test_remembered_videos_are_bounded_and_the_oldest_go_first():
    state: dict[str, Any] = {}
    for i in range(SEEN_KEPT + 50):
        remember(state, f"v{i}", {})
    assert len(state["videos"]) == SEEN_KEPT
    assert needs_details(state, "v0") and not needs_details(state, f"v{SEEN_KEPT + 49}")
    json.dumps(state)  # it is saved as JSON


def test_validate_refuses_non_http_urls_and_zero_max_new():
    assert VideoSource(id="v", type="video", url="ftp://x", max_new=0).validate() == [
        "url: must be an http(s) URL, got 'ftp://x'",
        "max_new: must be at least 1",
    ]


async def test_within_cancels_what_overruns_and_keeps_what_finished():
    async def quick() -> str:
        return "done"

    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    async def failing() -> str:
        raise ParseError("bad")

    out = await within({"a": quick(), "b": slow(), "c": failing()}, 0.2)
    assert out["a"] == "done" and "b" not in out and isinstance(out["c"], ParseError)


async def test_within_lets_a_bug_propagate():
    async def buggy() -> str:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        await within({"a": buggy()}, 1)
