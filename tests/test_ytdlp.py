"""yt-dlp off the event loop: real extractions against 127.0.0.1, timeouts that kill, clean errors."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from monitor import ytdlp
from monitor.errors import ParseError
from monitor.http import FetchError
from tests.conftest import REPO
from tests.origin import Origin, Route

PAGE = b"""<!doctype html><html><head><title>Briefing</title></head><body>
<video controls src="clip.mp4"><track kind="captions" srclang="en" src="captions.vtt"></video>
</body></html>"""


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as o:
        o.routes["/page.html"] = Route(PAGE, headers={"Content-Type": "text/html"})
        o.routes["/stuck.html"] = Route(PAGE, headers={"Content-Type": "text/html"}, delay=8)
        o.routes["/no-video.html"] = Route(
            b"<html><head><title>Nothing</title></head><body><p>text only</p></body></html>",
            headers={"Content-Type": "text/html"},
        )
        yield o
    ytdlp.shutdown()


def live_workers() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.name == "yt-dlp"}


def idle_workers() -> set[int]:
    return {w.proc.pid for w in ytdlp._idle}


async def test_extraction_finds_the_html5_video_and_its_captions(origin: Origin):
    info = await ytdlp.extract(origin.url("/page.html"), flat=False, timeout=20)
    assert info["url"] == origin.url("/clip.mp4")
    assert info["subtitles"] == {"en": [{"url": origin.url("/captions.vtt"), "ext": "vtt"}]}
    assert info["title"].startswith("Briefing")


async def test_event_loop_keeps_running_during_an_extraction(origin: Origin):
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        with pytest.raises(FetchError):
            await ytdlp.extract(
                origin.url("/stuck.html"), flat=False, timeout=0.6, opts={"socket_timeout": 30}
            )
    finally:
        ticker.cancel()
    elapsed = time.monotonic() - started
    assert ticks > elapsed / 0.01 * 0.5  # the loop ran freely the whole time


async def test_stuck_extraction_is_stopped_at_the_timeout_and_its_process_killed(origin: Origin):
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"timed out after 1s \(extraction stopped\)"):
        await ytdlp.extract(
            origin.url("/stuck.html"), flat=False, timeout=1, opts={"socket_timeout": 30}
        )
    assert time.monotonic() - started < 4
    # Only idle workers remain: the one that was stuck is gone, not left running.
    assert live_workers() == idle_workers()
    # And the next extraction works.
    info = await ytdlp.extract(origin.url("/page.html"), flat=False, timeout=20)
    assert info["subtitles"]


async def test_cancelled_extraction_kills_its_worker(origin: Origin):
    task = asyncio.create_task(
        ytdlp.extract(
            origin.url("/stuck.html"), flat=False, timeout=30, opts={"socket_timeout": 30}
        )
    )
    await asyncio.sleep(1.0)
    busy = live_workers() - idle_workers()
    assert busy
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while live_workers() & busy and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not live_workers() & busy


async def test_workers_are_reused_between_extractions(origin: Origin):
    await ytdlp.extract(origin.url("/page.html"), flat=False, timeout=20)
    first = idle_workers()
    started = time.monotonic()
    await ytdlp.extract(origin.url("/page.html"), flat=False, timeout=20)
    assert idle_workers() & first
    assert time.monotonic() - started < 1.0  # a warm worker: no import, no pattern compiling


async def test_http_error_is_a_fetch_error_with_its_status_and_a_readable_reason(origin: Origin):
    with pytest.raises(FetchError) as caught:
        await ytdlp.extract(origin.url("/missing.html"), flat=False, timeout=20)
    assert caught.value.status == 404
    reason = str(caught.value)
    assert reason.startswith("yt-dlp: ") and "HTTP Error 404" in reason
    assert "ERROR" not in reason and "caused by" not in reason and "\x1b" not in reason


async def test_page_without_video_is_a_parse_error(origin: Origin):
    with pytest.raises(ParseError, match="Unsupported URL"):
        await ytdlp.extract(origin.url("/no-video.html"), flat=False, timeout=20)


async def test_unreachable_host_is_a_fetch_error():
    with pytest.raises(FetchError, match="yt-dlp: "):
        await ytdlp.extract("http://127.0.0.1:9/nothing-listens-here", flat=False, timeout=10)


def test_options_ask_for_metadata_only_quietly_and_without_a_cache():
    params = ytdlp.options(flat=True, timeout=20, opts={"playlistend": 5})
    assert params["skip_download"] and params["simulate"] and params["quiet"]
    assert params["cachedir"] is False
    assert params["extract_flat"] == "in_playlist"
    assert params["socket_timeout"] == 10
    assert params["playlistend"] == 5
    assert ytdlp.options(flat=False, timeout=600)["socket_timeout"] == 30
    assert ytdlp.options(flat=False, timeout=600)["extract_flat"] is False


def test_importing_the_module_does_not_import_yt_dlp():
    code = "import sys, monitor.ytdlp, monitor.sources.video, monitor.sources.youtube; "
    code += "print('yt_dlp' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


async def test_yt_dlp_cannot_be_led_to_private_addresses_unless_allowed(origin: Origin):
    """yt-dlp connects by itself: its worker refuses private addresses the user did not name."""
    url = origin.url("/page.html")
    with pytest.raises(FetchError, match="refused to connect to 127.0.0.1"):
        await ytdlp.extract(url, flat=False, timeout=20, allow_private=False, trusted_host=None)
    # The host the user configured is trusted as given...
    info = await ytdlp.extract(
        url, flat=False, timeout=20, allow_private=False, trusted_host="127.0.0.1"
    )
    assert info["subtitles"]
    # ...and allow_private lifts the guard; the same worker serves both kinds of request.
    assert await ytdlp.extract(url, flat=False, timeout=20, allow_private=True)
