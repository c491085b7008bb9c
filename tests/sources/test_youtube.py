"""The `youtube` source: real channel feeds, yt-dlp only for new videos, captions via respx."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from monitor import sources as registry
from monitor import ytdlp
from monitor.archive.sqlite import Store
from monitor.config import ConfigError, parse_config
from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.models import Media
from monitor.pipeline import run_source
from monitor.sources.base import Collected, FetchContext
from monitor.sources.video import MAX_TRIES
from monitor.sources.youtube import (
    YoutubeSource,
    channel_id_from_page,
    parse_channel_feed,
)
from monitor.transcripts import choose_track
from tests.conftest import FIXTURES

CHANNEL = "UCsXVk37bltHxD1rDPwtNM8Q"  # Kurzgesagt, whose 2026 feed is in realdata
FEED_URL = f"https://www.youtube.com/feeds/videos.xml?channel_id={CHANNEL}"
KURZGESAGT = "youtube/channel-feed-user-Kurzgesagt-2026.xml"
FIRST_THREE = ["zg40FHOAqC0", "D0WQK7cMJn8", "OU36JDGzXb0"]
TIMEDTEXT = "https://www.youtube.com/api/timedtext"
INFO_JSON = "youtube/yt-dlp-info-json-youtube-2024-anonymized.json"


def info_fixture(vid: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"video/{vid}.info.json").read_text(encoding="utf-8"))


class FakeYtdlp:
    """Stands in for `monitor.ytdlp.extract`: recorded info JSONs, calls noted, errors on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.infos = {vid: info_fixture(vid) for vid in FIRST_THREE}
        self.errors: dict[str, Exception] = {}
        self.by_url: dict[str, dict[str, Any]] = {}

    async def extract(
        self, url: str, *, flat: bool, timeout: float, opts: dict[str, Any] | None = None, **_: Any
    ) -> dict[str, Any]:
        self.calls.append((url, flat))
        if url in self.by_url:
            return copy.deepcopy(self.by_url[url])
        vid = parse_qs(urlsplit(url).query).get("v", [""])[0]
        if vid in self.errors:
            raise self.errors[vid]
        if vid in self.infos:
            return copy.deepcopy(self.infos[vid])
        info = copy.deepcopy(self.infos["OU36JDGzXb0"])  # a video without captions
        info.update(id=vid, webpage_url=f"https://www.youtube.com/watch?v={vid}", duration=300)
        return info

    def detailed(self) -> list[str]:
        return [parse_qs(urlsplit(u).query)["v"][0] for u, flat in self.calls if not flat]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeYtdlp:
    f = FakeYtdlp()
    monkeypatch.setattr(ytdlp, "extract", f.extract)
    return f


@pytest.fixture
def feed(realdata: Path) -> bytes:
    return (realdata / KURZGESAGT).read_bytes()


def serve_captions(router: respx.Router) -> respx.Route:
    def answer(request: httpx.Request) -> httpx.Response:
        q = parse_qs(request.url.query.decode())
        name = f"{q['v'][0]}.{q['lang'][0]}.{q['fmt'][0]}"
        path = FIXTURES / "video" / name
        if not path.exists() or "tlang" in q:
            return httpx.Response(404)
        return httpx.Response(200, content=path.read_bytes())

    return router.get(url__startswith=TIMEDTEXT).mock(side_effect=answer)


async def collect(source: YoutubeSource, state: dict[str, Any]) -> tuple[Collected, list[str]]:
    async with Http() as http:
        ctx = FetchContext(http=http, state=state, timeout=5)
        collected = await source.collect(ctx)
        return collected, ctx.log


def source(**kw: Any) -> YoutubeSource:
    kw.setdefault("channel_id", CHANNEL)
    kw.setdefault("speech_to_text", False)  # tests/test_stt.py covers it
    return YoutubeSource(id="kurzgesagt", type="youtube", **kw)


# --- the feed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "first"),
    [
        ("channel-feed-user-Kurzgesagt-2026.xml", 15, "zg40FHOAqC0"),
        ("channel-feed-DigitalFoundry-UC9PBzalIcEQCsiIkq36PyUA.xml", 15, "W_S7iKZZdHw"),
        ("channel-feed-PBSSpaceTime-UC7_gcs09iThXybpVgjHZ_7g.xml", 14, "q-6oU3jXAho"),
    ],
)
def test_every_real_channel_feed_gives_its_videos(
    realdata: Path, name: str, count: int, first: str
):
    videos = parse_channel_feed((realdata / "youtube" / name).read_bytes())
    assert len(videos) == count
    assert videos[0].id == first
    # The feed-level channel id lacks "UC" in newer feeds; the entries' ids never do.
    assert all(v.channel_id and v.channel_id.startswith("UC") for v in videos)
    assert all(v.title and v.published_at and v.thumbnail for v in videos)
    assert all(v.views is not None and v.description for v in videos)


def test_feed_404_page_is_a_parse_error_not_a_crash(realdata: Path):
    with pytest.raises(ParseError):
        parse_channel_feed((realdata / "youtube/channel-feed-404-not-found.html").read_bytes())


def test_atom_feed_that_is_not_youtube_gives_no_videos():
    body = b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>x</id></entry></feed>'
    assert parse_channel_feed(body) == []


async def test_feed_entries_become_video_posts_at_their_watch_url(fake, feed):
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        collected, _ = await collect(source(transcripts=False, max_new=1), {})
    assert len(collected.posts) == 15
    post = collected.posts[0]
    assert post.external_id == "zg40FHOAqC0"
    assert post.url == "https://www.youtube.com/watch?v=zg40FHOAqC0"  # the feed links to /shorts/
    assert post.kind == "video"
    assert post.title == "Jupiter Made Earth Possible"
    assert post.text and post.text.startswith("Jupiter once wandered deep into the inner Solar")
    assert post.author == "Kurzgesagt – In a Nutshell"
    assert post.published_at == "2026-01-22T15:01:42Z"
    assert post.media[0] == Media(
        url="https://i3.ytimg.com/vi/zg40FHOAqC0/hqdefault.jpg",
        medium="image",
        width=480,
        height=360,
        role="thumbnail",
    )
    assert post.extra["channel_id"] == CHANNEL


# --- details and transcripts --------------------------------------------------------------------


async def test_first_fetch_details_max_new_videos_with_duration_and_transcript(fake, feed):
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        captions = serve_captions(router)
        collected, log = await collect(source(max_new=3), {})
    assert sorted(fake.detailed()) == sorted(FIRST_THREE)
    posts = {p.external_id: p for p in collected.posts}
    jupiter = posts["zg40FHOAqC0"]
    assert jupiter.media[1] == Media(
        url="https://www.youtube.com/watch?v=zg40FHOAqC0", medium="video", duration=58.0,
        role="content",
    )  # fmt: skip
    assert jupiter.lang == "en"
    assert jupiter.transcript and jupiter.transcript.split("\n")[3] == (
        "shaped Mars, and it may have helped"
    )
    assert [round(s.start, 2) for s in jupiter.segments][:4] == [0.0, 2.6, 5.04, 7.8]
    # Automatic captions: the original-language WebVTT, not a translation.
    asked = [parse_qs(c.request.url.query.decode()) for c in captions.calls]
    assert {"v": ["zg40FHOAqC0"], "fmt": ["vtt"], "kind": ["asr"]}.items() <= {
        k: v for k, v in asked[[q["v"][0] for q in asked].index("zg40FHOAqC0")].items()
    }.items()
    # Human subtitles come first, here only as json3/srv1/ttml: json3 is the best of those.
    channel = posts["D0WQK7cMJn8"]
    assert channel.transcript == (
        "We made a new channel!\nIt is all about the history of science,\n"
        "told by the people who made it.\nSubscribe, and see you there."
    )
    # No captions at all: the post is kept, and the summary says so once.
    assert posts["OU36JDGzXb0"].transcript is None
    assert log == ["transcripts: no captions in en for https://www.youtube.com/watch?v=OU36JDGzXb0"]
    # The others wait for the next fetch, already stored from the feed.
    assert (
        posts["hDU9WcmQA2E"].transcript is None and posts["hDU9WcmQA2E"].media[1].duration is None
    )


async def test_next_fetch_asks_yt_dlp_only_for_videos_not_yet_seen(fake, feed):
    state: dict[str, Any] = {}
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        first, _ = await collect(source(max_new=3), state)
        fake.calls.clear()
        second, _ = await collect(source(max_new=3), state)
    ids = [p.external_id for p in first.posts]
    assert fake.detailed() == ids[3:6]
    # A seen video's post reads the same without yt-dlp: nothing would be rewritten.
    before, after = first.posts[0], second.posts[0]
    assert (after.title, after.text, after.media, after.lang, after.url) == (
        before.title, before.text, before.media, before.lang, before.url,
    )  # fmt: skip
    assert after.transcript is None  # the archive keeps the one it has


async def test_unchanged_feed_is_a_304_once_every_video_is_detailed(fake, feed):
    state: dict[str, Any] = {}
    seen_headers: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen_headers.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, content=feed, headers={"ETag": '"v1"'})

    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(side_effect=answer)
        serve_captions(router)
        await collect(source(max_new=10), state)  # 5 videos left waiting
        await collect(source(max_new=10), state)  # those 5: the feed is asked unconditionally
        fake.calls.clear()
        third, _ = await collect(source(max_new=10), state)
    assert seen_headers == [None, None, '"v1"']
    assert third.not_modified and third.posts == []
    assert fake.calls == []


async def test_failed_extraction_keeps_the_feed_post_and_is_retried_a_few_times(fake, feed):
    fake.errors["zg40FHOAqC0"] = FetchError("yt-dlp: Sign in to confirm you're not a bot", 429)
    state: dict[str, Any] = {}
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        logs = []
        for _ in range(MAX_TRIES + 1):
            fake.calls.clear()
            collected, log = await collect(source(max_new=15), state)
            logs.append(log)
            assert collected.posts[0].title == "Jupiter Made Earth Possible"
    assert "zg40FHOAqC0" not in fake.detailed()  # given up after MAX_TRIES
    assert any("details for video zg40FHOAqC0 failed (try 1)" in line for line in logs[0])
    assert any("giving up" in line for line in logs[MAX_TRIES - 1])


async def test_caption_download_that_fails_is_tried_again_next_fetch(fake, feed):
    state: dict[str, Any] = {}
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        router.get(url__startswith=TIMEDTEXT).mock(return_value=httpx.Response(429))
        first, log = await collect(source(max_new=1), state)
    assert first.posts[0].transcript is None
    assert log[0].startswith("transcripts: captions unreadable (HTTP 429 Too Many Requests) for")
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        fake.calls.clear()
        second, _ = await collect(source(max_new=1), state)
    assert fake.detailed() == ["zg40FHOAqC0"]
    assert second.posts[0].transcript and "shaped Mars" in second.posts[0].transcript


async def test_upcoming_stream_is_looked_at_again_only_once_it_has_started(fake, feed):
    upcoming = fake.infos["zg40FHOAqC0"]
    upcoming.update(live_status="is_upcoming", release_timestamp=time.time() + 3600)
    upcoming.update(automatic_captions={}, subtitles={})
    state: dict[str, Any] = {}
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        await collect(source(max_new=1), state)
        fake.calls.clear()
        await collect(source(max_new=1), state)
        assert "zg40FHOAqC0" not in fake.detailed()
        state["videos"]["zg40FHOAqC0"]["after"] = time.time() - 1  # the premiere has begun
        fake.infos["zg40FHOAqC0"] = info_fixture("zg40FHOAqC0")
        fake.calls.clear()
        third, _ = await collect(source(max_new=1), state)
    assert fake.detailed() == ["zg40FHOAqC0"]
    assert third.posts[0].transcript


async def test_transcripts_off_asks_for_no_captions(fake, feed):
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        captions = serve_captions(router)
        collected, log = await collect(source(max_new=3, transcripts=False), {})
    assert not captions.calls and log == []
    assert collected.posts[0].media[1].duration == 58.0


async def test_feed_404_says_which_channel(realdata: Path, fake):
    page = (realdata / "youtube/channel-feed-404-not-found.html").read_bytes()
    with respx.mock(assert_all_called=False) as router:
        router.get(FEED_URL).mock(return_value=httpx.Response(404, content=page))
        with pytest.raises(FetchError, match=f"YouTube feed not found .*{CHANNEL}") as caught:
            await collect(source(), {})
    assert caught.value.status == 404


async def test_playlist_feed_is_read_by_playlist_id(fake, feed):
    with respx.mock(assert_all_called=False) as router:
        route = router.get(
            "https://www.youtube.com/feeds/videos.xml?playlist_id=PLFs4vir_WsTyXrrpFstD64Qj95vpy-yo1"
        ).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        yt = source(channel_id=None, playlist_id="PLFs4vir_WsTyXrrpFstD64Qj95vpy-yo1", max_new=1)
        collected, _ = await collect(yt, {})
    assert route.called and len(collected.posts) == 15


# --- handles ------------------------------------------------------------------------------------


async def test_handle_is_resolved_from_the_channel_page_once(realdata: Path, fake, feed):
    page = (
        realdata / "youtube/channel-videos-tab-page-ProgrammingKnowledge-2021.html"
    ).read_bytes()
    state: dict[str, Any] = {}
    with respx.mock(assert_all_called=False) as router:
        channel_page = router.get("https://www.youtube.com/@ProgrammingKnowledge").mock(
            return_value=httpx.Response(200, content=page)
        )
        feed_route = router.get(
            "https://www.youtube.com/feeds/videos.xml?channel_id=UCs6nmQViDpUw0nuIx9c_WvA"
        ).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        yt = source(channel_id=None, handle="@ProgrammingKnowledge", max_new=1)
        await collect(yt, state)
        await collect(yt, state)
    assert channel_page.call_count == 1 and feed_route.call_count == 2
    assert "SOCS=" in channel_page.calls[0].request.headers["cookie"]  # past the consent wall
    assert state["resolved"] == {
        "handle": "ProgrammingKnowledge",
        "channel_id": "UCs6nmQViDpUw0nuIx9c_WvA",
    }
    assert not [c for c in fake.calls if c[1]]  # yt-dlp was not needed


async def test_handle_behind_a_consent_wall_is_resolved_by_yt_dlp(realdata: Path, fake, feed):
    consent = (realdata / "youtube/consent-page-eu.html").read_bytes()
    assert channel_id_from_page(consent) is None
    fake.by_url["https://www.youtube.com/@kurzgesagt"] = {"channel_id": CHANNEL, "entries": []}
    with respx.mock(assert_all_called=False) as router:
        router.get("https://www.youtube.com/@kurzgesagt").mock(
            return_value=httpx.Response(200, content=consent)
        )
        router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
        serve_captions(router)
        yt = source(channel_id=None, handle="kurzgesagt", max_new=1)
        collected, _ = await collect(yt, {})
    assert ("https://www.youtube.com/@kurzgesagt", True) in fake.calls
    assert len(collected.posts) == 15


async def test_unknown_handle_is_a_clear_error(fake):
    with respx.mock(assert_all_called=False) as router:
        router.get("https://www.youtube.com/@nobody-here").mock(return_value=httpx.Response(404))
        yt = source(channel_id=None, handle="nobody-here")
        with pytest.raises(FetchError, match="no YouTube channel @nobody-here"):
            await collect(yt, {})


# --- configuration ------------------------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.TYPES, "youtube", "monitor.sources.youtube:YoutubeSource")


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({}, "sources.yt.channel_id: exactly one of channel_id, handle, playlist_id (got none)"),
        (
            {"channel_id": CHANNEL, "handle": "x"},
            "sources.yt.channel_id: exactly one of channel_id, handle, playlist_id "
            "(got channel_id and handle)",
        ),
        ({"channel_id": "sXVk37bltHxD1rDPwtNM8Q"}, "sources.yt.channel_id: expected UC and 22"),
        ({"handle": "a b"}, "sources.yt.handle: not a YouTube handle"),
        ({"channel_id": CHANNEL, "max_new": 0}, "sources.yt.max_new: must be at least 1"),
        ({"channel_id": CHANNEL, "languages": "en", "chanel": 1}, "sources.yt.chanel: unknown key"),
    ],
)
def test_config_problems_name_their_key(registered, table: dict[str, Any], problem: str):
    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": {"yt": {"type": "youtube", **table}}}, env={})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_config_with_a_channel_id_builds_the_source(registered):
    config = parse_config(
        {"sources": {"yt": {"type": "youtube", "channel_id": CHANNEL, "languages": ["tr", "en"]}}},
        env={},
    )
    yt = config.sources["yt"]
    assert isinstance(yt, YoutubeSource) and yt.languages == ["tr", "en"] and yt.transcripts


# --- choosing a caption track (real yt-dlp info) ------------------------------------------------


@pytest.fixture
def real_info(realdata: Path) -> dict[str, Any]:
    return json.loads((realdata / INFO_JSON).read_text(encoding="utf-8"))


def test_default_track_is_the_original_language_asr_in_webvtt(real_info):
    url, ext, lang = choose_track(real_info, None)  # type: ignore[misc]
    assert (ext, lang) == ("vtt", "en-orig")
    assert "kind=asr" in url and "tlang" not in url


def test_human_subtitles_win_over_automatic_captions_in_the_same_language(real_info):
    url, ext, lang = choose_track(real_info, ["de", "en"])  # type: ignore[misc]
    assert (ext, lang) == ("vtt", "de") and "kind=asr" not in url


def test_a_regional_language_falls_back_to_the_language(real_info):
    assert choose_track(real_info, ["en-GB"])[2] == "en-orig"  # type: ignore[index]


def test_no_track_in_the_configured_languages_is_none(real_info):
    assert choose_track(real_info, ["xx"]) is None
    assert choose_track({"id": "x"}, None) is None


def test_html5_track_without_language_is_used_when_nothing_else_is():
    info = {"subtitles": {None: [{"url": "http://127.0.0.1/c.vtt", "ext": "vtt"}]}}
    assert choose_track(info, None) == ("http://127.0.0.1/c.vtt", "vtt", "und")


def test_hls_subtitle_playlists_and_unknown_formats_are_skipped():
    info = {
        "language": "en",
        "subtitles": {
            "en": [
                {"url": "https://x.test/subs.m3u8", "ext": "vtt", "protocol": "m3u8_native"},
                {"url": "https://x.test/subs.ass", "ext": "ass"},
                {"url": "https://x.test/subs.srt", "ext": "srt"},
            ]
        },
    }
    assert choose_track(info, None) == ("https://x.test/subs.srt", "srt", "en")


# --- through the pipeline -----------------------------------------------------------------------


async def test_alert_on_words_said_in_a_youtube_video_links_to_that_second(
    registered, fake, feed, tmp_path: Path
):
    config = parse_config(
        {
            "monitor": {"database": str(tmp_path / "m.db")},
            "sources": {
                "kz": {
                    "type": "youtube",
                    "channel_id": CHANNEL,
                    "max_new": 1,
                    "speech_to_text": False,
                }
            },
            "alerts": {"mars": {"query": '"shaped Mars"', "notify": ["hook"]}},
            "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        },
        env={},
    )
    store = Store(config.database)
    try:
        store.sync_sources((s.id, s.type, s.describe()) for s in config.sources.values())
        with respx.mock(assert_all_called=False) as router:
            router.get(FEED_URL).mock(return_value=httpx.Response(200, content=feed))
            serve_captions(router)
            async with Http() as http:
                result = await run_source(config.sources["kz"], config, store, http)
        assert result.ok, result.error
        assert [m.offset for m in result.matches] == [pytest.approx(7.8)]
        with store.transaction() as db:
            payload = json.loads(
                db.execute("SELECT payload FROM deliveries WHERE alert_id = 'mars'").fetchone()[0]
            )
        assert payload["link"] == "https://www.youtube.com/watch?v=zg40FHOAqC0&t=7s"
    finally:
        store.close()
