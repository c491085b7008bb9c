"""The `telegram` source: real t.me/s/ captures, written pages, and the ?before= backfill loop."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx

from monitor.config import build
from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.sources.base import FetchContext
from monitor.sources.telegram import TelegramSource, parse_count, parse_duration, parse_preview
from tests.conftest import real_bytes

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata" / "telegram"
FIXTURES = REPO / "fixtures" / "telegram"


def real(name: str) -> bytes:
    return real_bytes(REALDATA / name)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def source(**kw) -> TelegramSource:
    return TelegramSource(**{"id": "tg", "type": "telegram", "channel": "outletnews", **kw})


# --- real captures ------------------------------------------------------------------------


def test_every_real_capture_parses_to_dated_messages_with_urls():
    if not REALDATA.is_dir():
        pytest.skip(f"realdata not present: {REALDATA}")
    files = sorted(REALDATA.glob("*.html"))
    assert files
    for path in files:
        posts, oldest = parse_preview(path.read_bytes(), "https://t.me/s/x")
        assert posts, path.name
        for post in posts:
            channel, number = post.external_id.split("/")
            assert post.url == f"https://t.me/{channel}/{number}"
            assert post.published_at and post.published_at.endswith("Z")
            assert post.author
        assert oldest == min(int(p.external_id.split("/")[1]) for p in posts)


def test_full_page_gives_twelve_messages_oldest_first_with_the_before_cursor():
    posts, oldest = parse_preview(
        real("tme-s-topwar_official-full-page-2023.html"), "https://t.me/s/topwar_official"
    )
    ids = [p.external_id for p in posts]
    assert len(ids) == 12
    assert ids[0] == "topwar_official/70989" and ids[-1] == "topwar_official/71008"
    assert oldest == 70989
    first = posts[0]
    assert first.author == "Военное обозрение"
    assert first.published_at == "2023-02-28T07:47:53Z"
    assert first.text.startswith("В Санкт-Петербурге в небо над городом подняли истребители")
    assert first.extra["views"] == 37200
    assert first.kind == "post"
    assert [m.medium for m in first.media] == ["image"]


def test_line_wraps_in_the_markup_are_spaces_and_br_is_a_line_break():
    posts, _ = parse_preview(
        real("tme-s-fragment-oper_goblin-voice-2018.html"), "https://t.me/s/oper_goblin"
    )
    assert posts[0].text.splitlines()[:4] == [
        "Обсудили:",
        "",
        "- Сталина не забыть",
        "- Плохие фильмы",
    ]


def test_album_keeps_video_with_duration_thumbnail_and_photos_and_is_a_video():
    posts, _ = parse_preview(
        real("tme-s-fragment-anna_news-album-photo-video.html"), "https://t.me/s/anna_news"
    )
    (post,) = posts
    assert post.kind == "video"
    assert post.external_id == "anna_news/46908"
    video, thumb, photo1, photo2 = post.media
    assert video.medium == "video" and video.type == "video/mp4" and video.duration == 5.0
    assert video.url.startswith("https://cdn4.telegram-cdn.org/file/3fc678ce81.mp4?token=")
    assert thumb.role == "thumbnail" and thumb.url.startswith(
        "https://cdn4.telegram-cdn.org/file/bQ4J"
    )
    # The album's photos sit in style="background-image: url(&quot;...&quot;)".
    assert photo1.medium == photo2.medium == "image"
    assert photo1.url.startswith("https://cdn4.telegram-cdn.org/file/hreFvq_I28")
    assert post.extra["views"] == 59500
    # Hashtags are searches on the preview, not links the author wrote.
    assert post.extra["links"] == ["https://t.me/anna_news"]
    assert "#Белгород" in post.text and post.text.endswith("@anna_news")


def test_forwarded_message_names_the_channel_and_the_origin_in_author():
    posts, _ = parse_preview(
        real("tme-s-fragment-oper_goblin-forwarded.html"), "https://t.me/s/oper_goblin"
    )
    (post,) = posts
    assert post.author == "Tynu40k Goblina (oper.ru) (forwarded from Пул N3)"
    assert post.extra["forwarded_from"] == {
        "name": "Пул N3",
        "url": "https://t.me/dimsmirnov175/44604",
    }
    assert post.extra["views"] == 214400
    assert (
        post.text == "Британская разведка выяснила, почему Ким Чен Ын начал выводить дочку в свет"
    )


def test_forward_from_a_private_source_has_a_name_and_no_link():
    posts, _ = parse_preview(
        real("tme-s-fragment-oper_goblin-voice-2018.html"), "https://t.me/s/oper_goblin"
    )
    assert posts[0].extra["forwarded_from"] == {"name": "Спортивный Екб"}


def test_voice_message_is_audio_with_its_duration_and_not_a_video():
    posts, _ = parse_preview(
        real("tme-s-fragment-oper_goblin-voice-2018.html"), "https://t.me/s/oper_goblin"
    )
    (post,) = posts
    (audio,) = post.media
    assert audio.medium == "audio" and audio.type == "audio/ogg" and audio.duration == 1660.0
    assert post.kind == "post"
    assert post.published_at == "2018-04-24T15:28:46Z"


def test_link_preview_video_is_a_card_and_does_not_make_the_post_a_video():
    posts, _ = parse_preview(
        real("tme-s-fragment-fighter_bomber-link-preview-video.html"),
        "https://t.me/s/fighter_bomber",
    )
    (post,) = posts
    assert post.kind == "post"
    assert post.text == "Жениться вам, барин, пора! 😁\n\nhttps://t.me/shalnyak/5410"
    assert post.extra["link_preview"]["url"] == "https://t.me/shalnyak/5410"
    assert post.extra["link_preview"]["title"] == "Shalnyak"
    assert post.extra["link_preview"]["description"].startswith("Дядь @fighter_bomber глянь!!!")
    assert post.extra["edited"] is True
    assert [(m.medium, m.role) for m in post.media] == [
        (None, "link"),
        ("video", "card"),
        ("image", "card"),
    ]
    assert post.media[1].duration == 11.0


def test_poll_question_and_options_become_the_text():
    posts, _ = parse_preview(real("tme-s-fragment-it_begin-poll.html"), "https://t.me/s/it_begin")
    (post,) = posts
    assert post.text == (
        "Как лучше?\n- Несколько постов в день\n- Один пост в несколько дней\n"
        "- Свой вариант в комментарии"
    )
    poll = post.extra["poll"]
    assert poll["voters"] == 222
    assert [o["percent"] for o in poll["options"]] == ["16%", "83%", "3%"]
    assert post.extra["views"] == 1100


def test_document_is_described_in_extra():
    posts, _ = parse_preview(
        real("tme-s-fragment-oper_goblin-document-file.html"), "https://t.me/s/oper_goblin"
    )
    assert posts[0].extra["document"] == {
        "title": "Оппозиционные медиапроекты.pdf",
        "size": "2.1 MB",
    }
    assert posts[0].media == ()


def test_video_too_big_for_the_preview_keeps_the_message_link_duration_and_thumbnail():
    posts, _ = parse_preview(
        real("tme-s-topwar_official-full-page-2023.html"), "https://t.me/s/topwar_official"
    )
    post = next(p for p in posts if p.external_id == "topwar_official/71006")
    assert post.kind == "video"
    page, thumb = post.media
    assert (page.url, page.medium, page.role, page.duration) == (
        "https://t.me/topwar_official/71006",
        "video",
        "page",
        177.0,
    )
    assert thumb.role == "thumbnail"
    assert post.author == "Военное обозрение (forwarded from Старше Эдды)"


# --- written fixtures: what the captures lack ---------------------------------------------


def test_reply_text_does_not_leak_and_signature_joins_the_author():
    posts, _ = parse_preview(
        fixture("outletnews-fragment-reply-signature.html"), "https://t.me/s/outletnews"
    )
    (post,) = posts
    assert post.text == "Update: the all clear was given at 09:40."
    assert post.author == "Outlet News (by Jane Doe)"
    assert post.extra["signature"] == "Jane Doe"
    assert post.extra["reply_to"] == {
        "url": "https://t.me/outletnews/129",
        "author": "Outlet News",
        "text": "Sirens in Kharkiv this morning",
    }
    assert post.extra["views"] == 1_200_000
    assert post.extra["edited"] is True
    assert [m.url for m in post.media] == ["https://cdn4.telesco.pe/file/reply-photo.jpg"]


def test_page_without_messages_or_history_is_a_parse_error_naming_the_cause():
    body = b"<html><head><title>Telegram: Contact @nobody</title></head><body></body></html>"
    with pytest.raises(ParseError, match="public"):
        parse_preview(body, "https://t.me/nobody")


def test_empty_channel_history_is_no_messages_and_no_cursor():
    body = b'<html><body><section class="tgme_channel_history js-message_history"></section></body></html>'
    assert parse_preview(body, "https://t.me/s/empty") == ([], None)


@pytest.mark.parametrize(
    ("text", "count"),
    [("746", 746), ("59.5K", 59_500), ("214.4K", 214_400), ("1.1K", 1_100), ("1.2M", 1_200_000),
     ("", None), ("views", None)],
)  # fmt: skip
def test_view_counts_are_expanded(text, count):
    assert parse_count(text) == count


@pytest.mark.parametrize(
    ("text", "seconds"), [("0:05", 5.0), ("27:40", 1660.0), ("1:02:03", 3723.0), ("soon", None)]
)
def test_durations_are_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


# --- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["outletnews", "Outlet_News", "abcd"])
def test_public_channel_names_are_accepted(channel):
    assert source(channel=channel).validate() == []


@pytest.mark.parametrize(
    ("channel", "hint"),
    [("@outletnews", "outletnews"), ("https://t.me/outletnews", "outletnews"),
     ("1news", None), ("abc", None), ("news channel", None)],
)  # fmt: skip
def test_channel_names_outside_the_charset_are_refused_with_a_hint(channel, hint):
    (problem,) = source(channel=channel).validate()
    assert problem.startswith("channel:")
    assert (f"did you mean {hint!r}" in problem) if hint else "did you mean" not in problem


def test_config_table_builds_the_source_and_names_bad_keys():
    problems: list[str] = []
    table = {"type": "telegram", "channel": "outletnews", "backfill": 20}
    built = build(TelegramSource, table, "sources.tg", problems, extra={"id": "tg"})
    assert problems == [] and built == source(backfill=20, id="tg")
    build(TelegramSource, {"type": "telegram", "channel": "@outletnews"}, "sources.tg", problems,
          extra={"id": "tg"})  # fmt: skip
    assert problems[0].startswith("sources.tg.channel: '@outletnews' is not a public channel")


def test_backfill_and_base_url_are_checked():
    problems = source(backfill=0, base_url="t.me").validate()
    assert [p.split(":")[0] for p in problems] == ["base_url", "backfill"]


# --- the fetch loop -------------------------------------------------------------------------


def mock_channel(router: respx.Router, first_page: str) -> dict[str, int]:
    """t.me/s/outletnews answered by `before`; returns the number of requests per page."""
    pages = {
        None: first_page,
        "101": "outletnews-before-101.html",
        "81": "outletnews-before-81.html",
    }
    calls = {"first": 0, "101": 0, "81": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        before = request.url.params.get("before")
        calls[before or "first"] += 1
        return httpx.Response(
            200,
            content=fixture(pages[before]),
            headers={"content-type": "text/html; charset=utf-8"},
        )

    router.get(url__regex=r"^https://t\.me/s/outletnews(\?before=\d+)?$").mock(side_effect=answer)
    return calls


def ids(collected) -> list[int]:
    return [int(p.external_id.split("/")[1]) for p in collected.posts]


async def test_first_fetch_backfills_the_newest_n_with_before_pages():
    with respx.mock() as router:
        routes = mock_channel(router, "outletnews-page.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(backfill=50).collect(ctx)
    assert len(got.posts) == 50
    assert ids(got) == sorted(ids(got))  # oldest first, as the channel shows them
    assert ids(got)[0] == 73 and ids(got)[-1] == 125
    assert 104 not in ids(got)
    assert routes == {"first": 1, "101": 1, "81": 1}
    assert ctx.state == {"channel": "outletnews", "newest": 125, "floor": 73}
    assert got.http_status == 200


async def test_small_backfill_reads_one_page_and_keeps_only_the_newest():
    with respx.mock() as router:
        routes = mock_channel(router, "outletnews-page.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(backfill=5).collect(ctx)
    assert ids(got) == [120, 121, 122, 123, 124, 125][-5:]
    assert routes == {"first": 1, "101": 0, "81": 0}
    assert ctx.state["floor"] == 121


async def test_later_fetch_reads_the_first_page_and_returns_new_and_known_messages_only():
    state = {"channel": "outletnews", "newest": 125, "floor": 121}
    with respx.mock() as router:
        routes = mock_channel(router, "outletnews-page-later.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state=state, timeout=5)
            got = await source(backfill=5).collect(ctx)
    # 121-125 again (an edit would show), 126-127 new; 103-120 were left out of the backfill.
    assert ids(got) == [121, 122, 123, 124, 125, 126, 127]
    assert routes == {"first": 1, "101": 0, "81": 0}
    assert state == {"channel": "outletnews", "newest": 127, "floor": 121}
    assert ctx.log == []


async def test_later_fetch_after_a_long_gap_pages_back_to_the_newest_seen():
    state = {"channel": "outletnews", "newest": 90, "floor": 80}
    with respx.mock() as router:
        routes = mock_channel(router, "outletnews-page.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state=state, timeout=5)
            got = await source(backfill=100).collect(ctx)
    assert routes == {"first": 1, "101": 1, "81": 0}
    assert ids(got)[0] == 81 and ids(got)[-1] == 125  # back to the page holding 90, no further
    assert state["newest"] == 125 and ctx.log == []


async def test_gap_longer_than_the_backfill_keeps_the_newest_and_says_so():
    state = {"channel": "outletnews", "newest": 50, "floor": 40}
    with respx.mock() as router:
        mock_channel(router, "outletnews-page.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state=state, timeout=5)
            got = await source(backfill=10).collect(ctx)
    assert ids(got) == list(range(116, 126))
    assert ctx.log == ["10 or more new messages since the last fetch; kept the newest 10"]


async def test_state_of_another_channel_is_ignored():
    state = {"channel": "otherchannel", "newest": 10_000, "floor": 9_000}
    with respx.mock() as router:
        mock_channel(router, "outletnews-page.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state=state, timeout=5)
            got = await source(backfill=3).collect(ctx)
    assert ids(got) == [123, 124, 125]
    assert state["channel"] == "outletnews"


async def test_base_url_is_where_the_preview_is_read():
    with respx.mock() as router:
        route = router.get("http://127.0.0.1:8080/s/outletnews").mock(
            return_value=httpx.Response(
                200, content=fixture("outletnews-fragment-reply-signature.html")
            )
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(base_url="http://127.0.0.1:8080/", backfill=1).collect(ctx)
    assert route.called and ids(got) == [130]


async def test_unknown_channel_redirected_to_the_contact_page_fails_clearly():
    with respx.mock() as router:
        router.get("https://t.me/s/outletnews").mock(
            return_value=httpx.Response(302, headers={"location": "https://t.me/outletnews"})
        )
        router.get("https://t.me/outletnews").mock(
            return_value=httpx.Response(200, content=b"<html><body>Contact</body></html>")
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            with pytest.raises(ParseError, match="web preview"):
                await source().collect(ctx)


async def test_http_errors_reach_the_pipeline_as_fetch_errors():
    with respx.mock() as router:
        router.get("https://t.me/s/outletnews").mock(
            return_value=httpx.Response(429, headers={"retry-after": "30"})
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            with pytest.raises(FetchError) as err:
                await source().collect(ctx)
    assert err.value.status == 429 and err.value.retry_after == 30


async def test_paging_stops_in_time_to_hand_back_what_it_has(monkeypatch):
    clock = iter(range(0, 1000, 4))  # every look at the clock is 4 s later
    monkeypatch.setattr("monitor.sources.base._clock", lambda: next(clock))
    with respx.mock() as router:
        routes = mock_channel(router, "outletnews-page.html")
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)  # a budget of 7.5 s
            got = await source(backfill=50).collect(ctx)
    assert routes == {"first": 1, "101": 1, "81": 0}
    assert len(got.posts) == 42
    assert ctx.log == ["stopped paging after 2 pages to stay within the timeout"]
