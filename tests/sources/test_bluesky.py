"""The `bluesky` source: real AppView answers, written feed pages, and cursor paging."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from monitor.config import build
from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.sources.base import FetchContext
from monitor.sources.bluesky import (
    BlueskySource,
    expand_links,
    parse_author_feed,
    parse_feed_item,
)
from tests.conftest import real_bytes

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata" / "bluesky"
FIXTURES = REPO / "fixtures" / "bluesky"
FEED = "https://public.api.bsky.app/xrpc/app.bsky.feed.getAuthorFeed"


def real(name: str) -> bytes:
    return real_bytes(REALDATA / name)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def source(**kw) -> BlueskySource:
    return BlueskySource(
        **{"id": "bsky", "type": "bluesky", "handle": "outletnews.bsky.social", **kw}
    )


# --- real answers (2023) --------------------------------------------------------------------


def test_real_author_feed_gives_every_entry_with_its_cursor():
    entries, cursor = parse_author_feed(real("getAuthorFeed-shinyakato.dev-2023-04.json"))
    assert len(entries) == 25
    assert cursor == "1682809172466::bafyreihdpdn7uiqmshzb2y4o67gzy2aeairq6phuk476k2oidhy2p5dbwu"
    for e in entries:
        assert e.post.url.startswith("https://bsky.app/profile/")
        assert e.post.published_at.endswith("Z")
        assert e.post.external_id.startswith("at://")


def test_real_repost_is_attributed_to_the_original_author_and_keeps_the_reposter():
    entries, _ = parse_author_feed(real("getAuthorFeed-shinyakato.dev-2023-04.json"))
    first = entries[0]
    assert first.repost
    post = first.post
    assert post.author == "C. P. Moore (@christopherpmoore.xyz)"
    assert post.url == "https://bsky.app/profile/christopherpmoore.xyz/post/3jukz62npim26"
    assert post.published_at == "2023-04-30T06:26:07Z"
    assert post.extra["reposted_by"] == "Shinya Kato 🤯 (@shinyakato.dev)"
    assert post.extra["reposted_at"] == "2023-04-30T06:33:13Z"
    # The feed is ordered by when the repost happened, not when the post was written.
    assert first.sort_at.isoformat() == "2023-04-30T06:33:13.578000+00:00"
    (image,) = post.media
    assert image.medium == "image" and "rs:fit:2000:2000" in image.url  # the full size


def test_real_reply_and_external_card_are_recognised():
    entries, _ = parse_author_feed(real("getAuthorFeed-shinyakato.dev-2023-04.json"))
    reply = entries[1].post
    assert reply.text == "Thx, yes he is! 😆"
    assert reply.extra["reply_to"].startswith("at://did:plc:gojiv3xdlwobtke4csnksyyb/")
    card = next(e.post for e in entries if "card" in e.post.extra)
    assert card.extra["card"]["title"] == "Whyrusleeping (@why.bsky.team)"
    assert [(m.role, m.url) for m in card.media] == [
        ("link", "https://psky.app/profile/why.bsky.team/post/3juk5phzpf62w")
    ]


def test_every_post_view_in_every_real_answer_parses():
    views: list[dict] = []

    def walk(node):
        if isinstance(node, dict):
            if {"uri", "author", "record"} <= node.keys():  # a post view, wherever it sits
                views.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    # Threads nest post views; feeds carry them for replies' parents and roots too.
    for name in ("getPostThread-2023.json", "searchPosts-small.json",
                 "getAuthorFeed-shinyakato.dev-2023-04.json"):  # fmt: skip
        walk(json.loads(real(name)))
    assert len(views) > 50
    for view in views:
        entry = parse_feed_item({"post": view})
        assert entry is not None and entry.post.url.startswith("https://bsky.app/profile/")
    # A reply's root quotes a post with a picture (recordWithMedia): both are kept.
    quoting = [
        parse_feed_item({"post": v}).post
        for v in views
        if "recordWithMedia" in json.dumps(v.get("embed", {}))
    ]
    assert any("quote" in p.extra and p.media for p in quoting)


def test_answers_that_are_not_an_author_feed_are_clean_parse_errors():
    with pytest.raises(ParseError, match="not an author feed"):
        parse_author_feed(real("getPostThread-2023.json"), "thread")
    with pytest.raises(ParseError, match="not JSON"):
        parse_author_feed(b"<html>", "x")


# --- written pages: today's shapes --------------------------------------------------------


def page1() -> dict[str, object]:
    entries, cursor = parse_author_feed(fixture("getAuthorFeed-page1.json"))
    assert cursor == "2026-03-02T08:00:00.500Z"
    return {e.post.url.rsplit("/", 1)[1]: e for e in entries}


def test_video_embed_makes_a_video_post_with_playlist_and_thumbnail():
    post = page1()["3lkvideo2aa2k"].post
    assert post.kind == "video"
    video, thumb = post.media
    assert video.url.endswith("/playlist.m3u8") and video.medium == "video"
    assert (video.width, video.height, video.type) == (1920, 1080, "application/vnd.apple.mpegurl")
    assert thumb.url.endswith("/thumbnail.jpg") and thumb.role == "thumbnail"
    assert post.lang == "en"
    assert post.author == "Outlet News (@outletnews.bsky.social)"
    assert post.extra["video_alt"] == "Sergei Lavrov at a press conference"


def test_quote_is_kept_in_extra_and_as_a_quoted_block_in_the_text():
    post = page1()["3lkquote22aak"].post
    assert post.text == (
        "The ministry responds:\n\n> @mfa.example.gov:\n> Statement on the deployment of\n"
        "> foreign troops: consultations continue."
    )
    assert (
        post.extra["quote"]["url"] == "https://bsky.app/profile/mfa.example.gov/post/3lkmfa2stmnt"
    )
    assert post.kind == "post" and post.media == ()


def test_quote_with_media_keeps_both():
    post = page1()["3lkrwm222aakk"].post
    assert post.extra["quote"]["author"] == "Jane Reporter (@janereporter.bsky.social)"
    assert "> Air-raid shelter in Kharkiv metro this morning." in post.text
    (image,) = post.media  # ours, not the quoted post's pictures
    assert (image.width, image.height) == (1200, 800)


def test_quote_of_a_deleted_post_says_so_without_a_block():
    post = page1()["3lkgone22aakk"].post
    assert post.extra["quote"]["state"] == "deleted"
    assert ">" not in post.text
    assert post.lang == "en" and post.extra["langs"] == ["en", "fr"]


def test_shortened_link_in_the_text_is_written_out_and_the_card_kept():
    post = page1()["3lkcard222aak"].post
    url = "https://www.nato.int/cps/en/natohq/news_231234.htm?selectedLocale=en"
    assert post.text == f"Full story: {url}"
    assert post.extra["card"] == {
        "url": url,
        "title": "NATO Secretary General meets ministers",
        "description": "Allies discussed air defence.",
    }
    assert [m.role for m in post.media] == ["link", "card"]


def test_link_expansion_counts_utf8_bytes_and_keeps_links_shown_whole():
    text = "Ζ news: example.org/a-very-lo..."
    start = len("Ζ news: ".encode())
    facet = {
        "index": {"byteStart": start, "byteEnd": len(text.encode())},
        "features": [
            {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.org/a-very-long"}
        ],
    }
    assert expand_links(text, [facet]) == "Ζ news: https://example.org/a-very-long"
    whole = "see example.org"
    facet["index"] = {"byteStart": 4, "byteEnd": 15}
    assert expand_links(whole, [facet]) == whole


def test_repost_in_todays_shape_keys_on_the_repost_record():
    entry = page1()["3lkjane2photo"]
    assert entry.repost
    assert entry.key == "at://did:plc:ou7letnewsq3zq4m2x5k6d2a/app.bsky.feed.repost/3lkrepost2jane"
    assert entry.post.author == "Jane Reporter (@janereporter.bsky.social)"
    assert entry.post.extra["reposted_by"] == "Outlet News (@outletnews.bsky.social)"
    assert [m.width for m in entry.post.media] == [4000, 3000]


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "handle", ["outletnews.bsky.social", "bbc.co.uk", "did:plc:ou7letnewsq3zq4m2x5k6d2a"]
)
def test_handles_and_dids_are_accepted(handle):
    assert source(handle=handle).validate() == []


@pytest.mark.parametrize(
    ("handle", "hint"),
    [("@outletnews.bsky.social", "outletnews.bsky.social"),
     ("https://bsky.app/profile/outletnews.bsky.social", "outletnews.bsky.social"),
     ("outletnews", None), ("outlet news.bsky.social", None)],
)  # fmt: skip
def test_other_handles_are_refused_with_a_hint(handle, hint):
    (problem,) = source(handle=handle).validate()
    assert problem.startswith("handle:")
    assert (f"did you mean {hint!r}" in problem) if hint else "did you mean" not in problem


def test_config_table_builds_the_source_and_names_bad_keys():
    problems: list[str] = []
    table = {"type": "bluesky", "handle": "outletnews.bsky.social", "include_reposts": False}
    built = build(BlueskySource, table, "sources.b", problems, extra={"id": "b"})
    assert problems == [] and built == source(id="b", include_reposts=False)
    build(BlueskySource, {"type": "bluesky", "handle": "x.bsky.social", "limit": "50"}, "sources.b",
          problems, extra={"id": "b"})  # fmt: skip
    assert problems == ["sources.b.limit: expected a whole number, got the string '50'"]


def test_limit_and_appview_are_checked():
    problems = source(limit=0, appview="public.api.bsky.app").validate()
    assert [p.split(":")[0] for p in problems] == ["appview", "limit"]


# --- the fetch loop ---------------------------------------------------------------------------


def mock_feed(
    router: respx.Router, first: str = "getAuthorFeed-page1.json"
) -> list[dict[str, list[str]]]:
    """The AppView answered by cursor; returns the query of every request."""
    queries: list[dict[str, list[str]]] = []
    pages = {None: first, "2026-03-02T08:00:00.500Z": "getAuthorFeed-page2.json"}

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        queries.append(query)
        name = pages[query.get("cursor", [None])[0]]
        return httpx.Response(
            200, content=fixture(name), headers={"content-type": "application/json"}
        )

    router.get(url__startswith=FEED).mock(side_effect=answer)
    return queries


def keys(collected) -> list[str]:
    return [p.url.rsplit("/", 1)[1] for p in collected.posts]


async def test_first_fetch_follows_the_cursor_to_the_end_of_the_feed():
    with respx.mock() as router:
        queries = mock_feed(router)
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source().collect(ctx)
    assert len(got.posts) == 9
    assert [q.get("cursor") for q in queries] == [None, ["2026-03-02T08:00:00.500Z"]]
    assert queries[0]["actor"] == ["outletnews.bsky.social"] and queries[0]["limit"] == ["50"]
    assert ctx.state == {
        "actor": "outletnews.bsky.social",
        "newest_at": "2026-03-02T10:30:00.500000+00:00",
        "newest_key": "at://did:plc:ou7letnewsq3zq4m2x5k6d2a/app.bsky.feed.post/3lkvideo2aa2k",
    }


async def test_first_fetch_stops_at_limit():
    with respx.mock() as router:
        queries = mock_feed(router)
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(limit=3).collect(ctx)
    assert keys(got) == ["3lkvideo2aa2k", "3lkjane2photo", "3lkquote22aak"]
    assert len(queries) == 1 and queries[0]["limit"] == ["3"]


async def test_later_fetch_stops_at_the_newest_entry_already_seen():
    state: dict = {}
    with respx.mock() as router:
        mock_feed(router)
        async with Http() as http:
            await source().collect(FetchContext(http=http, state=state, timeout=5))
    with respx.mock() as router:
        queries = mock_feed(router, first="getAuthorFeed-later.json")
        async with Http() as http:
            ctx = FetchContext(http=http, state=state, timeout=5)
            got = await source().collect(ctx)
    assert keys(got) == ["3lknew1222aak", "3lknew2222aak"]
    assert len(queries) == 1  # the cursor of the later page is never followed
    assert state["newest_key"].endswith("/3lknew1222aak")
    assert ctx.log == []


async def test_reposts_can_be_left_out():
    with respx.mock() as router:
        mock_feed(router)
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(include_reposts=False).collect(ctx)
    assert "3lkjane2photo" not in keys(got) and len(got.posts) == 8
    # A repost can still be the newest entry of the feed: the state follows the feed.
    assert ctx.state["newest_key"].endswith("/3lkvideo2aa2k")


async def test_appview_base_url_is_configurable():
    with respx.mock() as router:
        route = router.get(
            url__startswith="http://127.0.0.1:9/xrpc/app.bsky.feed.getAuthorFeed"
        ).mock(return_value=httpx.Response(200, content=fixture("getAuthorFeed-page2.json")))
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(appview="http://127.0.0.1:9/").collect(ctx)
    assert route.called and len(got.posts) == 2


async def test_unknown_actor_gives_the_appview_message():
    with respx.mock() as router:
        router.get(url__startswith=FEED).mock(
            return_value=httpx.Response(400, content=fixture("error-profile-not-found.json"))
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            with pytest.raises(FetchError, match="Profile not found") as err:
                await source().collect(ctx)
    assert err.value.status == 400
    assert ctx.state == {}
