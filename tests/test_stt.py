"""Speech to text: a real model on an espeak-ng clip, the background worker, and life without it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from monitor import stt, ytdlp
from monitor.http import Http
from monitor.models import Post, Segment
from monitor.sources.base import Collected, FetchContext
from monitor.sources.video import VideoSource
from monitor.transcripts import merge_transcribed, queue_speech, speech_results
from tests.conftest import FIXTURES
from tests.origin import Origin, Route

CLIP = FIXTURES / "video/speech.wav"
SAID = json.loads((FIXTURES / "video/speech.json").read_text(encoding="utf-8"))["sentences"]
PAGE = b"""<!doctype html><html><head><title>Minister's trip</title></head><body>
<video controls src="speech.wav"></video></body></html>"""


def model_installed() -> bool:
    return stt.available() and os.path.isdir(stt.resolve_model(stt.DEFAULT_MODEL))


needs_model = pytest.mark.skipif(
    not model_installed(), reason="the stt extra (faster-whisper and a tiny.en model) is absent"
)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        o.routes["/speech.html"] = Route(PAGE, headers={"Content-Type": "text/html"})
        o.routes["/speech.wav"] = Route(CLIP.read_bytes(), headers={"Content-Type": "audio/wav"})
        o.routes["/stalled.html"] = Route(PAGE, headers={"Content-Type": "text/html"}, delay=20)
        yield o
    ytdlp.shutdown()


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> stt.Transcriber:
    """A transcriber of the test's own, so no job crosses from one test to another."""
    t = stt.Transcriber(job_timeout=120)
    monkeypatch.setattr(stt, "_transcriber", t)
    return t


async def collect(source: VideoSource, state: dict[str, Any]) -> tuple[Collected, list[str]]:
    async with Http(allow_private=True) as http:
        ctx = FetchContext(http=http, state=state, timeout=20)
        return await source.collect(ctx), ctx.log


def said_at(segments: list[Segment], word: str) -> float:
    return next(s.start for s in segments if word.lower() in s.text.lower())


# --- the real model ---------------------------------------------------------------------------


@needs_model
def test_clip_is_transcribed_with_words_at_the_second_they_are_said():
    segments = stt.transcribe_file(str(CLIP))
    text = " ".join(s.text for s in segments).lower()
    assert "weather" in text and "minister" in text and "ukraine" in text
    assert said_at(segments, "weather") == pytest.approx(SAID[0]["start"], abs=1.0)
    assert said_at(segments, "Ukraine") == pytest.approx(SAID[1]["start"], abs=1.0)


@needs_model
async def test_video_without_captions_is_transcribed_in_the_background(origin: Origin, fresh):
    source = VideoSource(id="trip", type="video", url=origin.url("/speech.html"))
    state: dict[str, Any] = {}
    started = time.monotonic()
    first, log = await collect(source, state)
    assert time.monotonic() - started < 10  # the fetch did not wait for the model
    assert first.posts[0].transcript is None
    assert log == [
        f"transcripts: no captions in en for {origin.url('/speech.html')}",
        f"transcripts: speech to text started in the background for {origin.url('/speech.html')}",
    ]
    assert fresh.wait(120), "transcription did not finish"
    second, log = await collect(source, state)
    (post,) = second.posts
    assert post.transcript and "ukraine" in post.transcript.lower()
    assert said_at(list(post.segments), "Ukraine") == pytest.approx(SAID[1]["start"], abs=1.0)
    assert "speech" not in state and log == []


# --- without the model ------------------------------------------------------------------------


async def test_without_the_extra_a_single_notice_and_no_job(monkeypatch, fresh):
    monkeypatch.setattr(stt, "available", lambda: False)

    async def listing(url: str, *, flat: bool, timeout: float, opts: Any = None, **_: Any) -> dict:
        if flat:
            return {"_type": "playlist", "entries": [{"_type": "url", "id": f"v{i}", "url": f"https://v.example/{i}"} for i in range(3)]}  # fmt: skip
        return {"id": url[-1], "title": "silent", "webpage_url": url, "subtitles": {}}

    monkeypatch.setattr(ytdlp, "extract", listing)
    state: dict[str, Any] = {}
    collected, log = await collect(
        VideoSource(id="v", type="video", url="https://v.example/"), state
    )
    assert len(collected.posts) == 3
    assert log == [
        "transcripts: no captions in en for https://v.example/0 and 2 more",
        "transcripts: videos without captions need the stt extra (pip install 'outlet-monitor[stt]')",
    ]
    assert "speech" not in state and not fresh.busy("v:0")


async def test_job_lost_with_a_restart_is_queued_again(monkeypatch, fresh):
    monkeypatch.setattr(stt, "available", lambda: True)
    submitted: list[tuple[str, str]] = []
    monkeypatch.setattr(fresh, "submit", lambda key, url, **kw: submitted.append((key, url)))
    post = Post(external_id="abc", url="https://v.example/abc", title="t", kind="video")
    async with Http() as http:
        ctx = FetchContext(http=http, state={}, timeout=5)
        queue_speech(post, ctx, source_id="src", model="tiny.en")
        assert submitted == [("src:abc", "https://v.example/abc")]
        submitted.clear()
        assert speech_results(ctx, source_id="src", model="tiny.en") == []  # a new process
    assert submitted == [("src:abc", "https://v.example/abc")]
    assert ctx.state["speech"]["abc"]["title"] == "t"


async def test_finished_and_failed_jobs_are_taken_once(monkeypatch, fresh):
    monkeypatch.setattr(stt, "available", lambda: True)
    monkeypatch.setattr(fresh, "submit", lambda *a, **kw: None)
    async with Http() as http:
        ctx = FetchContext(http=http, state={}, timeout=5)
        for vid in ("ok", "bad"):
            queue_speech(
                Post(external_id=vid, url=f"https://v.example/{vid}", kind="video"),
                ctx,
                source_id="s",
                model="tiny.en",
            )
        fresh._results["s:ok"] = [Segment(1.0, 2.0, "hello there")]
        fresh._results["s:bad"] = "yt-dlp: HTTP Error 403: Forbidden"
        ctx.log.clear()
        done = speech_results(ctx, source_id="s", model="tiny.en")
    assert [(p.external_id, p.transcript, p.segments) for p in done] == [
        ("ok", "hello there", (Segment(1.0, 2.0, "hello there"),))
    ]
    assert ctx.log == [
        "transcripts: speech to text failed (yt-dlp: HTTP Error 403: Forbidden) for "
        "https://v.example/bad"
    ]
    assert "speech" not in ctx.state


def test_transcripts_join_the_posts_they_belong_to():
    fresh_post = Post(external_id="a", url="u", title="edited title", kind="video")
    late = Post(
        external_id="a", url="u", title="old", transcript="said", segments=(Segment(0, 1, "said"),)
    )
    other = Post(external_id="b", url="v", transcript="elsewhere")
    merged = merge_transcribed([fresh_post], [late, other])
    assert [(p.external_id, p.title, p.transcript) for p in merged] == [
        ("b", None, "elsewhere"),
        ("a", "edited title", "said"),
    ]


def test_stuck_job_is_killed_at_its_timeout_and_the_worker_replaced(origin: Origin):
    t = stt.Transcriber(job_timeout=2)
    t.submit("k1", origin.url("/stalled.html"), model="tiny.en")
    assert t.busy("k1")
    assert t.wait(15)
    assert t.take("k1") == "timed out after 2s"
    assert t.take("k1") is None
    # The next job gets a new worker: this one fails fast on a missing page, but it runs.
    t.submit("k2", origin.url("/missing.html"), model="tiny.en")
    assert t.wait(30)
    result = t.take("k2")
    assert isinstance(result, str) and "404" in result


def test_model_names_resolve_to_installed_packages_or_stay_names(tmp_path):
    assert stt.resolve_model(str(tmp_path)) == str(tmp_path)
    assert stt.resolve_model("large-v3") == "large-v3"
