"""The `x` source: X API v2 timeline (paging, rate limits, errors) and Nitter RSS, real and written."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import httpx
import pytest
import respx

from monitor import sources as registry
from monitor.archive.sqlite import Store, iso_to_epoch
from monitor.config import ConfigError, parse_config
from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.models import Post, Segment
from monitor.pipeline import run_source
from monitor.sources import x as xmod
from monitor.sources.base import FetchContext
from monitor.sources.x import XSource, add_transcripts
from monitor.sources.x_api import parse_jsonl, parse_timeline, parse_user
from monitor.sources.x_nitter import parse_nitter
from tests.conftest import real_bytes

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata" / "x"
FIXTURES = REPO / "fixtures" / "x"
API = "https://api.x.com/2"
NITTER = "https://nitter.net"
TOKEN = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI%3DEUifiRBkKG5E2XzMDjRfl76ZC9Ub0wnz4XsNiRVBChTYbJcE3F"
USER_ID = "1171431585342709760"
T1, T2, T3, T4, T5, T6 = ("2029485232092115067", "2029492123333587067", "2029498473509843067",
                          "2029505176007635067", "2029512780280787067", "2029531243606995067")  # fmt: skip
O3 = "2029495885624275067"  # @trtworld's video that @TRTWorldNow reposted as T3


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def real(name: str) -> bytes:
    return real_bytes(REALDATA / name)


def api_source(**kw) -> XSource:
    return XSource(id="trt-x", type="x", handle="TRTWorldNow", bearer_token=TOKEN, **kw)


def nitter_source(**kw) -> XSource:
    return XSource(id="trt-x", type="x", handle="TRTWorldNow", backend="nitter",
                   instance=NITTER, **kw)  # fmt: skip


def ok(name: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        200, content=fixture(name), headers={"content-type": "application/json", **headers}
    )


def mock_user(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{API}/users/by/username/TRTWorldNow").mock(
        return_value=ok("api-user-by-username-TRTWorldNow.json")
    )


def timeline(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{API}/users/{USER_ID}/tweets")


async def collect(source: XSource, state: dict | None = None, timeout: float = 10.0):
    ctx = FetchContext(http=Http(), state=state if state is not None else {}, timeout=timeout)
    async with ctx.http:
        return await source.collect(ctx), ctx


# --- X API v2: parsing ---------------------------------------------------------------------


def test_retweet_is_the_original_post_by_its_author_with_the_reposting_account_kept():
    page = parse_timeline(fixture("api-user-tweets-page1.json"), "TRTWorldNow")
    rt = next(p for p in page.posts if p.extra.get("reposted_by"))

    assert rt.external_id == O3 and rt.url == f"https://x.com/trtworld/status/{O3}"
    assert rt.author == "@trtworld" and rt.extra["author_name"] == "TRT World"
    assert rt.extra["reposted_by"] == "TRTWorldNow" and rt.extra["repost_id"] == T3
    assert rt.extra["reposted_at"] == "2026-03-05T10:05:17Z"
    assert rt.published_at == "2026-03-05T09:55:00Z"  # the original's time, as Nitter gives it
    # The full text from includes.tweets, not the retweet's cut "RT @trtworld: … the An…".
    assert rt.text.startswith("Lavrov laughs off a question on Macron's idea of sending NATO")
    assert rt.text.endswith("Antalya Diplomacy Forum \U0001f447")
    assert "t.co" not in rt.text and "RT @" not in rt.text
    assert rt.kind == "video" and rt.extra["metrics"]["view_count"] == 184220


def test_timeline_page_gives_newest_id_and_next_token_from_meta():
    page = parse_timeline(fixture("api-user-tweets-page1.json"), "TRTWorldNow")
    assert (page.newest_id, page.count) == (T5, 3)
    assert page.next_token == "7140dibdnow9c7btw4828nlq2jx6e1mbfo3u1hkl6lmxz"
    last = parse_timeline(fixture("api-user-tweets-page2.json"), "TRTWorldNow")
    assert last.next_token is None


def test_links_are_expanded_to_their_final_url_and_escapes_undone():
    page = parse_timeline(fixture("api-user-tweets-page1.json"), "TRTWorldNow")
    post = next(p for p in page.posts if p.external_id == T5)
    assert post.text == (
        "Türkiye & Greece agree to keep the Aegean hotline open, foreign ministers say after "
        "talks in #Antalya https://www.trtworld.com/article/18265517"
    )
    assert post.url == f"https://x.com/TRTWorldNow/status/{T5}" and post.author == "@TRTWorldNow"
    assert post.kind == "post" and post.lang == "en" and post.title is None
    assert post.extra["metrics"] == {"retweet_count": 41, "reply_count": 6, "like_count": 212,
                                     "quote_count": 3, "bookmark_count": 9,
                                     "impression_count": 30115}  # fmt: skip


def test_reply_and_quote_are_recognised():
    page1 = parse_timeline(fixture("api-user-tweets-page1.json"), "TRTWorldNow")
    reply = next(p for p in page1.posts if p.external_id == T4)
    assert reply.extra["reply_to"] == "trtworld"
    assert reply.extra["in_reply_to_id"] == "2029503012345921536"
    assert reply.text.endswith("https://www.mfa.gov.tr/no_-61_-5-mart-2026.en.mfa")

    page2 = parse_timeline(fixture("api-user-tweets-page2.json"), "TRTWorldNow")
    quote = next(p for p in page2.posts if p.external_id == T1)
    assert quote.extra["quoted_id"] == "2029481541104595067"
    assert quote.extra["quoted_url"] == "https://x.com/trtworld/status/2029481541104595067"
    # The quoted post's link stays in the text; the link to the post's own photo does not.
    assert quote.text.endswith(
        "https://twitter.com/trtworld/status/2029481541104595067\n\n> @trtworld:\n"
        "> French President Macron says sending Western troops to Ukraine “cannot be ruled out”."
    )
    assert [(m.medium, m.role, m.url) for m in quote.media] == [
        ("image", "content", "https://pbs.twimg.com/media/Gk3TqXwWQAA9fZ1.jpg")
    ]
    assert quote.kind == "post"


def test_video_lists_mp4_variants_best_first_then_hls_then_the_thumbnail():
    page = parse_timeline(fixture("api-user-tweets-page2.json"), "TRTWorldNow")
    video = next(p for p in page.posts if p.external_id == T2)
    assert video.kind == "video"
    assert (
        video.text
        == "NATO Secretary General on troops in Ukraine: “No such plans are on the table.”"
    )
    got = [(m.medium, m.type, m.width, m.height, m.role) for m in video.media]
    assert got == [
        ("video", "video/mp4", 480, 852, "variant"),
        ("video", "video/mp4", 320, 568, "variant"),
        ("video", "application/x-mpegURL", 720, 1280, "variant"),
        ("image", None, 720, 1280, "thumbnail"),
    ]
    assert all(m.duration == 31.25 for m in video.media if m.medium == "video")


def test_gif_is_kept_as_video_media_but_the_post_is_no_video_to_transcribe():
    page = parse_timeline(fixture("api-user-tweets-since.json"), "TRTWorldNow")
    (gif,) = page.posts
    assert gif.kind == "post" and gif.text == "Snow in Ankara this morning"
    assert [(m.medium, m.url) for m in gif.media] == [
        ("video", "https://video.twimg.com/tweet_video/Gk4snWaXcAAbC1d.mp4"),
        ("image", "https://pbs.twimg.com/tweet_video_thumb/Gk4snWaXcAAbC1d.jpg"),
    ]


def test_retweet_whose_original_is_missing_keeps_the_cut_text_without_the_rt_prefix():
    doc = json.loads(fixture("api-user-tweets-page1.json"))
    doc["includes"]["tweets"] = []  # the original was deleted before the poll
    page = parse_timeline(json.dumps(doc).encode(), "TRTWorldNow")
    rt = next(p for p in page.posts if p.extra.get("reposted_by"))
    assert rt.external_id == O3 and rt.author == "@trtworld" and rt.extra["truncated"] is True
    assert rt.text.startswith("Lavrov laughs") and rt.text.endswith("the An…")
    assert rt.published_at == "2026-03-05T09:55:00Z"  # read from the original's id


def test_user_lookup_that_finds_nobody_is_a_clean_error_naming_the_handle():
    with pytest.raises(ParseError, match=r"@TRTWorldNoww .*Could not find user"):
        parse_user(fixture("api-user-by-username-not-found.json"), "TRTWorldNoww")


# --- X API v2: every real capture ------------------------------------------------------------


def test_real_users_tweets_page_gives_the_accounts_posts_and_paging_meta():
    page = parse_timeline(real("api-v2-users-783214-tweets-2022.json"), "Twitter")
    assert [p.external_id for p in page.posts] == ["1577730467436138524", "1565318587736285184"]
    assert page.posts[0].url == "https://x.com/Twitter/status/1577730467436138524"
    assert page.posts[0].text.startswith("whoa, it works\n\nnow everyone can mix GIFs")
    assert page.newest_id == "1577730467436138524"
    assert page.next_token == "7140dibdnow9c7btw4232poeq0wapgnwgwqwvuwn3peex"


def test_real_tweet_lookup_with_video_gives_a_video_post_with_its_variants():
    (post,) = parse_jsonl(real("api-v2-tweet-lookup-video-with-includes-twarc.jsonl"))
    assert post.kind == "video" and post.author == "@IgorBrigadir"
    assert post.url == "https://x.com/IgorBrigadir/status/1558553189766631429"
    assert post.text == "She's GOING with it! \U0001f40d"  # the video's own t.co link dropped
    assert post.published_at == "2022-08-13T20:36:51Z" and post.lang == "en"
    mp4 = [m for m in post.media if m.type == "video/mp4"]
    assert [(m.width, m.height) for m in mp4] == [(1280, 720), (640, 360), (480, 270)]
    assert any(m.url.split("?")[0].endswith(".m3u8") for m in post.media)
    assert post.media[-1].role == "thumbnail" and post.media[0].duration == 71.292
    assert post.extra["metrics"]["view_count"] == 19059


def test_real_edited_tweet_keeps_its_first_versions_id_so_edits_version_one_post():
    (post,) = parse_jsonl(real("api-v2-edited-tweet-edit-controls-twarc.jsonl"))
    assert post.external_id == "1576994746135764992"
    assert post.extra["edit_history"] == ["1576994746135764992", "1576994789110992896"]
    assert post.url == "https://x.com/wongmjane/status/1576994789110992896"
    assert post.text == "hey :)"  # the link to itself is noise
    assert post.lang is None  # "qst": X's code for "too short to tell"


def test_real_stream_with_a_cut_off_last_line_gives_the_complete_lines():
    body = real("api-v2-filtered-stream-truncated-last-line-twarc.jsonl")
    assert not body.endswith(b"\n")
    posts = parse_jsonl(body)
    assert len(posts) == 7
    assert all(p.url.startswith("https://x.com/") and p.published_at for p in posts)
    reply = next(p for p in posts if p.external_id == "1377650093109743620")
    assert reply.extra["in_reply_to_id"] == "1377266697850257410"
    quote = next(p for p in posts if p.external_id == "1377650090978992134")
    assert quote.extra["quoted_id"] == "1377640162566496258"
    # The quoted post's words are searched with the quoting post, as a quoted block.
    assert quote.text == (
        "Fury https://twitter.com/Manie_DS/status/1377640162566496258\n\n"
        "> @Manie_DS:\n> My car, Money, Warzone, My dogs, Food, Captain Morgan"
    )
    assert quote.extra["quote"]["author"] == "@Manie_DS"


def test_real_link_previews_are_kept_as_a_card_with_its_picture():
    posts = parse_jsonl(real("api-v2-filtered-stream-truncated-last-line-twarc.jsonl"))
    post = next(p for p in posts if p.external_id == "1377650277642338305")
    assert (
        post.extra["card"]["url"] == "https://www.instagram.com/p/CNIQbqSrZRL/?igshid=je3jmv61ndpu"
    )
    assert post.extra["card"]["title"].startswith("Klara Andrea Barnes on Instagram")
    assert post.extra["card"]["description"].startswith("0 Likes, 0 Comments")
    [picture] = [m for m in post.media if m.role == "card"]
    assert picture.url.endswith("8hToyQjC?format=jpg&name=orig")  # the largest size


def test_an_edited_post_keeps_the_time_it_was_first_published():
    [post] = parse_jsonl(real("api-v2-edited-tweet-edit-controls-twarc.jsonl"))[:1]
    assert post.external_id == "1576994746135764992"
    assert post.published_at == "2022-10-03T17:57:01Z"  # the first version's created_at
    assert post.extra["edited_at"] == "2022-10-03T17:57:11Z"


def test_a_broken_line_before_the_end_is_an_error_naming_the_line():
    lines = real("api-v2-filtered-stream-truncated-last-line-twarc.jsonl").split(b"\n")
    body = b"\n".join([lines[0], b'{"data": {"id": ', *lines[1:3]]) + b"\n"
    with pytest.raises(ParseError, match="line 2: not JSON"):
        parse_jsonl(body)


def _realdata_files() -> list[str]:
    if not REALDATA.exists():
        return ["(realdata absent)"]
    return sorted(p.name for p in REALDATA.iterdir() if p.suffix in (".json", ".jsonl"))


@pytest.mark.parametrize("name", _realdata_files())
def test_every_real_x_capture_gives_posts_or_a_clean_error(name):
    body = real(name)
    try:
        posts = parse_jsonl(body) if name.endswith(".jsonl") else parse_timeline(body).posts
    except ParseError as e:
        # The web client's GraphQL answers are not API v2: refused, and said so.
        assert name.startswith("graphql-"), e
        assert "not an X API v2 tweets response" in str(e)
        return
    assert posts and all(p.external_id.isdigit() and p.url for p in posts)


async def test_real_recorded_exchange_replays_with_its_gzip_body_and_rate_limit_headers():
    yaml = pytest.importorskip("yaml")
    cassette = yaml.safe_load(real("vcr-cassette-api-v2-users-783214-tweets.yaml"))
    answer = cassette["interactions"][0]["response"]
    headers = [(k, v) for k, values in answer["headers"].items() for v in values]
    source = XSource(id="tw", type="x", handle="Twitter", bearer_token=TOKEN,
                     api_base="https://api.twitter.com/2", max_results=2)  # fmt: skip
    state = {"user": {"handle": "twitter", "id": "783214", "username": "Twitter"}}
    with respx.mock:
        route = respx.get("https://api.twitter.com/2/users/783214/tweets").mock(
            return_value=httpx.Response(200, headers=headers, content=answer["body"]["string"])
        )
        got, ctx = await collect(source, state)
    assert route.call_count == 1  # 2 posts asked, 2 given: no second page despite next_token
    assert [p.external_id for p in got.posts] == ["1577730467436138524", "1565318587736285184"]
    assert state["since_id"] == "1577730467436138524"
    assert "rate_limited_until" not in state and ctx.log == []  # 1498 requests left


# --- X API v2: the fetch loop -----------------------------------------------------------------


async def test_first_fetch_pages_back_then_the_next_sends_since_id_of_the_newest():
    state: dict = {}
    with respx.mock:
        lookup = mock_user(respx)
        tweets = timeline(respx)
        tweets.side_effect = [ok("api-user-tweets-page1.json"), ok("api-user-tweets-page2.json")]
        first, _ = await collect(api_source(max_results=5), state)
    assert [p.external_id for p in first.posts] == [T5, T4, O3, T2, T1]
    assert lookup.call_count == 1 and tweets.call_count == 2
    p1, p2 = (dict(c.request.url.params) for c in tweets.calls)
    assert "since_id" not in p1 and "pagination_token" not in p1 and p1["max_results"] == "5"
    assert p2["pagination_token"] == "7140dibdnow9c7btw4828nlq2jx6e1mbfo3u1hkl6lmxz"
    assert p1["expansions"] == (
        "author_id,attachments.media_keys,referenced_tweets.id,referenced_tweets.id.author_id"
    )
    assert p1["media.fields"] == "type,url,preview_image_url,variants,duration_ms,width,height"
    assert "created_at" in p1["tweet.fields"] and "public_metrics" in p1["tweet.fields"]
    assert tweets.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"
    assert state["since_id"] == T5 and state["user"]["id"] == USER_ID

    state = json.loads(json.dumps(state))  # as the store keeps it
    with respx.mock:
        lookup = mock_user(respx)
        tweets = timeline(respx).mock(return_value=ok("api-user-tweets-since.json"))
        second, _ = await collect(api_source(max_results=5), state)
    assert lookup.call_count == 0  # the user id is cached
    (call,) = tweets.calls
    assert call.request.url.params["since_id"] == T5
    assert "pagination_token" not in call.request.url.params
    assert [p.external_id for p in second.posts] == [T6]
    assert state["since_id"] == T6


async def test_first_fetch_stops_at_max_results_even_with_more_pages():
    with respx.mock:
        mock_user(respx)
        tweets = timeline(respx).mock(return_value=ok("api-user-tweets-page1.json"))
        got, _ = await collect(api_source(max_results=3))
    assert tweets.call_count == 1 and len(got.posts) == 3


async def test_poll_without_new_posts_keeps_since_id():
    state = {"user": {"handle": "trtworldnow", "id": USER_ID, "username": "TRTWorldNow"},
             "since_id": T6}  # fmt: skip
    with respx.mock:
        timeline(respx).mock(return_value=ok("api-user-tweets-empty.json"))
        got, _ = await collect(api_source(), state)
    assert got.posts == [] and state["since_id"] == T6


async def test_replies_and_retweets_can_be_excluded_by_the_api():
    with respx.mock:
        mock_user(respx)
        tweets = timeline(respx).mock(return_value=ok("api-user-tweets-page2.json"))
        await collect(api_source(include_replies=False, include_retweets=False))
    assert tweets.calls[0].request.url.params["exclude"] == "replies,retweets"


async def test_429_backs_off_until_the_reset_time_and_says_so():
    reset = int(time.time()) + 600
    with respx.mock:
        mock_user(respx)
        timeline(respx).mock(
            return_value=httpx.Response(
                429,
                content=fixture("api-error-429-too-many-requests.json"),
                headers={
                    "content-type": "application/problem+json",
                    "x-rate-limit-limit": "1500",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(reset),
                },
            )  # fmt: skip
        )
        with pytest.raises(FetchError) as info:
            await collect(api_source())
    err = info.value
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(reset))
    assert str(err) == f"rate limited by the X API until {when} (x-rate-limit-reset)"
    assert err.status == 429 and 590 <= err.retry_after <= 601


@pytest.mark.parametrize("header", ["x-rate-limit-reset", "remaining 0 and reset"])
async def test_a_rate_limit_reset_years_away_waits_a_day_at_most(header):
    reset = int(time.time()) + 10 * 365 * 86400
    headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    state: dict[str, object] = {
        "user": {"handle": "trtworldnow", "id": USER_ID, "username": "TRTWorldNow"}
    }
    with respx.mock:
        if header == "x-rate-limit-reset":
            timeline(respx).mock(
                return_value=httpx.Response(
                    429, content=fixture("api-error-429-too-many-requests.json"), headers=headers
                )
            )
            with pytest.raises(FetchError) as info:
                await collect(api_source(), state)
            assert 86_390 <= info.value.retry_after <= 86_400
        else:
            timeline(respx).mock(return_value=ok("api-user-tweets-page1.json", **headers))
            await collect(api_source(max_results=50), state)
            assert 0 < state["rate_limited_until"] - time.time() <= 86_400


async def test_revoked_token_gives_an_error_naming_bearer_token_and_never_the_token():
    with respx.mock:
        respx.get(f"{API}/users/by/username/TRTWorldNow").mock(
            return_value=httpx.Response(
                401,
                content=fixture("api-error-401-unauthorized.json"),
                headers={"content-type": "application/problem+json"},
            )
        )
        with pytest.raises(FetchError) as info:
            await collect(api_source())
    message = str(info.value)
    assert info.value.status == 401
    assert "`bearer_token`" in message and "revoked" in message
    assert "HTTP 401 (Unauthorized: Unauthorized)" in message
    assert TOKEN not in message and TOKEN[:20] not in message


async def test_403_names_the_access_tier_and_what_x_said():
    state = {"user": {"handle": "trtworldnow", "id": USER_ID, "username": "TRTWorldNow"}}
    with respx.mock:
        timeline(respx).mock(
            return_value=httpx.Response(403, content=fixture("api-error-403-client-forbidden.json"))
        )
        with pytest.raises(FetchError) as info:
            await collect(api_source(), state)
    message = str(info.value)
    assert info.value.status == 403 and "access tier" in message
    assert "Client Forbidden: When authenticating requests" in message
    assert "[required: Appropriate Level of API Access]" in message
    assert "@TRTWorldNow is protected or suspended" in message


async def test_token_echoed_back_by_the_api_is_redacted():
    body = json.dumps({"title": "Unauthorized", "detail": f"Invalid token {TOKEN}"}).encode()
    with respx.mock:
        respx.get(f"{API}/users/by/username/TRTWorldNow").respond(401, content=body)
        with pytest.raises(FetchError) as info:
            await collect(api_source())
    assert TOKEN not in str(info.value) and "[bearer_token]" in str(info.value)


async def test_used_up_rate_limit_skips_the_next_fetch_until_reset_with_a_notice():
    state = {"user": {"handle": "trtworldnow", "id": USER_ID, "username": "TRTWorldNow"}}
    reset = int(time.time()) + 900
    with respx.mock:
        timeline(respx).mock(
            return_value=ok(
                "api-user-tweets-page1.json",
                **{"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)},
            )
        )
        got, ctx = await collect(api_source(max_results=50), state)
    assert len(got.posts) == 3  # the next page is not asked for: no requests left
    assert state["rate_limited_until"] == reset and state["since_id"] == T5
    assert any("rate limit used up" in n for n in ctx.log)

    with respx.mock:
        tweets = timeline(respx).mock(return_value=ok("api-user-tweets-since.json"))
        skipped, ctx = await collect(api_source(), state)
        assert tweets.call_count == 0
        assert skipped.posts == [] and skipped.not_modified
        assert ctx.log == [
            "X API rate limit used up: not asking again until "
            + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(reset))
        ]

        state["rate_limited_until"] = time.time() - 1  # the window has reset
        after, _ = await collect(api_source(), state)
        assert tweets.call_count == 1 and [p.external_id for p in after.posts] == [T6]
        assert "rate_limited_until" not in state


async def test_other_http_errors_say_which_api_call_failed():
    with respx.mock:
        respx.get(f"{API}/users/by/username/TRTWorldNow").respond(503)
        with pytest.raises(FetchError) as info:
            await collect(api_source())
    assert str(info.value).startswith("X API GET /2/users/by/username/:username: HTTP 503")


# --- Nitter ------------------------------------------------------------------------------------


def nitter_posts() -> dict[str, Post]:
    posts = parse_nitter(
        fixture("nitter-TRTWorldNow.rss.xml"), f"{NITTER}/TRTWorldNow/rss", "TRTWorldNow"
    )
    return {p.external_id: p for p in posts}


def test_nitter_retweet_is_attributed_to_its_author_with_the_reposter_kept():
    rt = nitter_posts()[O3]
    assert rt.author == "@trtworld" and rt.extra["reposted_by"] == "TRTWorldNow"
    assert rt.url == f"https://x.com/trtworld/status/{O3}"
    assert rt.text.startswith("Lavrov laughs off a question") and "RT by" not in rt.text
    assert rt.published_at == "2026-03-05T09:55:00Z"


def test_nitter_video_is_a_video_post_with_its_thumbnail_from_twimg():
    posts = nitter_posts()
    for tid in (O3, T2):
        assert posts[tid].kind == "video"
        (thumb,) = posts[tid].media
        assert thumb.role == "thumbnail"
        assert thumb.url.startswith("https://pbs.twimg.com/amplify_video_thumb/")
    assert "Video" not in posts[T2].text


def test_nitter_reply_quote_pinned_and_links_are_recognised():
    posts = nitter_posts()
    assert posts[T4].extra["reply_to"] == "trtworld"
    assert posts[T4].text == (
        "Full statement from the ministry: https://www.mfa.gov.tr/no_-61_-5-mart-2026.en.mfa"
    )
    assert posts[T5].text.endswith("#Antalya https://www.trtworld.com/article/18265517")
    quote = posts[T1]
    assert quote.extra["quoted_url"] == "https://x.com/trtworld/status/2029481541104595067"
    assert (
        quote.text
        == "Macron: “Nothing should be ruled out.” Moscow says the remark is “very dangerous”"
    )
    assert [m.url for m in quote.media] == ["https://pbs.twimg.com/media/Gk3TqXwWQAA9fZ1.jpg"]
    pinned = posts["1859144648094675067"]
    assert pinned.extra["pinned"] is True and pinned.text.startswith("Breaking news")
    assert [m.url for m in pinned.media] == [
        "https://pbs.twimg.com/media/Gc9pLmN2XAAz7Yt.jpg",
        "https://pbs.twimg.com/media/Gc9pLmO3WAAq1Rs.png",
    ]


def test_nitter_gif_keeps_the_mp4_and_every_post_points_at_x_com():
    posts = nitter_posts()
    gif = posts[T6]
    assert gif.kind == "post"
    assert [(m.medium, m.url) for m in gif.media] == [
        ("video", "https://video.twimg.com/tweet_video/Gk4snWaXcAAbC1d.mp4"),
        ("image", "https://pbs.twimg.com/tweet_video_thumb/Gk4snWaXcAAbC1d.jpg"),
    ]
    assert all(p.url.startswith("https://x.com/") and "#" not in p.url for p in posts.values())
    assert all(p.lang is None and p.title is None for p in posts.values())
    assert len(posts) == 7


def test_nitter_before_2023_marked_retweets_rt_and_the_creator_tells_whose():
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>x</title>
<item><title>RT: Talks in Antalya</title><dc:creator>@trtworld</dc:creator>
<description><![CDATA[<p>Talks in Antalya</p>]]></description>
<pubDate>Tue, 14 Mar 2023 10:00:00 GMT</pubDate>
<guid>https://nitter.example.org/trtworld/status/1635600000000000000#m</guid>
<link>https://nitter.example.org/trtworld/status/1635600000000000000#m</link></item>
</channel></rss>"""
    (post,) = parse_nitter(body, "https://nitter.example.org/TRTWorldNow/rss", "TRTWorldNow")
    assert post.extra["reposted_by"] == "TRTWorldNow" and post.author == "@trtworld"
    assert post.url == "https://x.com/trtworld/status/1635600000000000000"


@pytest.mark.parametrize(
    ("name", "content_type", "said"),
    [
        ("nitter-error-rate-limited.html", "text/html; charset=utf-8",
         "HTML page, not the RSS feed ('Instance has been rate limited. Use another instance"),
        ("nitter-whitelist.rss.xml", "application/rss+xml",
         "refuses this RSS reader ('RSS reader not yet whitelisted!')"),
        ("nitter-empty.rss.xml", "application/rss+xml",
         "has no posts: instances answer an empty feed when X rate-limits them"),
    ],
)  # fmt: skip
async def test_nitter_answering_200_without_posts_is_a_clear_error(name, content_type, said):
    with respx.mock:
        respx.get(f"{NITTER}/TRTWorldNow/rss").respond(
            200, content=fixture(name), headers={"content-type": content_type}
        )
        with pytest.raises(ParseError) as info:
            await collect(nitter_source())
    assert said in str(info.value)


async def test_nitter_filters_replies_and_retweets_when_asked():
    with respx.mock:
        respx.get(f"{NITTER}/TRTWorldNow/rss").respond(
            200, content=fixture("nitter-TRTWorldNow.rss.xml")
        )
        got, _ = await collect(nitter_source(include_replies=False, include_retweets=False))
    ids = {p.external_id for p in got.posts}
    assert O3 not in ids and T4 not in ids and T5 in ids and len(ids) == 5


async def test_nitter_404_names_the_handle():
    with respx.mock:
        respx.get(f"{NITTER}/TRTWorldNow/rss").respond(404, text="Not found")
        with pytest.raises(FetchError, match=r"no feed for @TRTWorldNow \(HTTP 404\)"):
            await collect(nitter_source())


# --- transcripts -----------------------------------------------------------------------------


@pytest.fixture
def fake_ytdlp(monkeypatch):
    """Replaces yt-dlp and the caption download: records the URLs, transcribes by a table."""
    calls: list[str] = []
    fail: dict[str, Exception] = {}

    async def extract(url: str, timeout: float, allow_private: bool = True) -> dict:
        calls.append(url)
        if url in fail:
            raise fail[url]
        return {"webpage_url": url, "subtitles": {"en": [{"ext": "vtt", "url": url + ".vtt"}]}}

    async def attach(post, info, ctx, languages):
        seg = Segment(12.0, 15.5, f"said in {post.external_id}")
        return dataclasses.replace(post, transcript=seg.text, segments=(seg,))

    monkeypatch.setattr(xmod, "extract_info", extract)
    monkeypatch.setattr(xmod, "attach_transcript", attach)
    return calls, fail


async def test_video_posts_get_their_transcript_once(fake_ytdlp):
    calls, _ = fake_ytdlp
    state: dict = {}
    with respx.mock:
        respx.get(f"{NITTER}/TRTWorldNow/rss").respond(
            200, content=fixture("nitter-TRTWorldNow.rss.xml")
        )
        got, _ = await collect(nitter_source(transcripts=True), state)
        again, _ = await collect(nitter_source(transcripts=True), state)
    assert sorted(calls) == sorted(f"https://x.com/{u}/status/{i}"
                                   for u, i in (("trtworld", O3), ("TRTWorldNow", T2)))  # fmt: skip
    by_id = {p.external_id: p for p in got.posts}
    assert by_id[O3].transcript == f"said in {O3}" and by_id[O3].segments[0].start == 12.0
    assert by_id[T6].transcript is None  # a GIF has nothing to say
    assert len(again.posts) == 7 and len(calls) == 2  # seen before: not extracted again


async def test_a_video_without_captions_is_a_notice_not_a_failed_source(fake_ytdlp):
    calls, fail = fake_ytdlp
    fail[f"https://x.com/TRTWorldNow/status/{T2}"] = RuntimeError("no subtitles")
    with respx.mock:
        respx.get(f"{NITTER}/TRTWorldNow/rss").respond(
            200, content=fixture("nitter-TRTWorldNow.rss.xml")
        )
        got, ctx = await collect(nitter_source(transcripts=True))
    by_id = {p.external_id: p for p in got.posts}
    assert by_id[T2].transcript is None and by_id[O3].transcript
    assert ctx.log == [f"no transcript for https://x.com/TRTWorldNow/status/{T2}: no subtitles"]


async def test_captions_found_by_yt_dlp_become_the_posts_timed_transcript(monkeypatch):
    pytest.importorskip("monitor.transcripts")
    vtt = b"WEBVTT\n\n00:00:12.000 --> 00:00:15.500\nLet them try.\n"
    asked: list[str] = []

    async def extract(
        url: str, timeout: float, allow_private: bool = True
    ) -> dict:  # yt-dlp's info for an X video
        asked.append(url)
        return {"id": url.rsplit("/", 1)[1], "language": "en",
                "subtitles": {"en": [{"ext": "vtt", "url": f"https://video.twimg.com/{url[-19:]}.vtt"}]}}  # fmt: skip

    monkeypatch.setattr(xmod, "extract_info", extract)
    state = {"user": {"handle": "trtworldnow", "id": USER_ID, "username": "TRTWorldNow"}}
    with respx.mock:
        timeline(respx).mock(return_value=ok("api-user-tweets-page1.json"))
        respx.get(f"https://video.twimg.com/{O3}.vtt").respond(200, content=vtt)
        got, _ = await collect(api_source(max_results=3, transcripts=True), state)
    assert asked == [f"https://x.com/trtworld/status/{O3}"]  # the one video in the page
    rt = next(p for p in got.posts if p.external_id == O3)
    assert rt.transcript == "Let them try."
    assert [(s.start, s.end) for s in rt.segments] == [(12.0, 15.5)]


async def test_videos_past_the_time_budget_come_back_with_their_transcript_next_fetch(fake_ytdlp):
    calls, _ = fake_ytdlp
    page = parse_timeline(fixture("api-user-tweets-page2.json"), "TRTWorldNow").posts
    ctx = FetchContext(http=None, state={}, timeout=10.0)  # type: ignore[arg-type]
    first = await add_transcripts(page, ctx, None, budget_end=time.monotonic())
    assert calls == [] and [p.transcript for p in first] == [None, None]
    assert ctx.log == ["1 video transcripts left for the next fetch (time limit)"]

    state = json.loads(json.dumps(ctx.state))  # the backlog survives the trip through the store
    ctx = FetchContext(http=None, state=state, timeout=10.0)  # type: ignore[arg-type]
    later = await add_transcripts([], ctx, None, budget_end=time.monotonic() + 60)
    (post,) = later
    assert post.external_id == T2 and post.transcript == f"said in {T2}"
    assert post.kind == "video" and post.media[0].type == "video/mp4"
    assert "transcript_backlog" not in ctx.state


# --- configuration and the pipeline ------------------------------------------------------------


@pytest.fixture
def x_registered(monkeypatch):
    monkeypatch.setitem(registry.TYPES, "x", "monitor.sources.x:XSource")


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"handle": "TRTWorldNow"}, "sources.s.bearer_token: required with backend = \"api\""),
        ({"handle": "TRTWorldNow", "backend": "nitter"}, "sources.s.instance: required"),
        ({"handle": "TRTWorldNow", "backend": "rss"}, "sources.s.backend: must be"),
        ({"handle": "TRT World", "bearer_token": "t"}, "sources.s.handle: not an X handle"),
        ({"handle": "a", "bearer_token": "t", "max_results": 0}, "sources.s.max_results"),
    ],
)  # fmt: skip
def test_config_problems_name_their_key(x_registered, table, problem):
    with pytest.raises(ConfigError) as info:
        parse_config({"sources": {"s": {"type": "x", **table}}}, env={})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_config_with_a_token_from_the_environment_builds(x_registered):
    config = parse_config(
        {"sources": {"s": {"type": "x", "handle": "@TRTWorldNow",
                           "bearer_token": "${X_BEARER_TOKEN}", "transcripts": True}}},
        env={"X_BEARER_TOKEN": TOKEN},
    )  # fmt: skip
    source = config.sources["s"]
    assert isinstance(source, XSource) and source.username == "TRTWorldNow"
    assert TOKEN in config.secrets


RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>AA</title>
<link>https://www.aa.com.tr/en</link><item><title>NATO foreign ministers meet in Antalya</title>
<link>https://www.aa.com.tr/en/world/nato-antalya/1</link><guid>aa-1</guid>
<pubDate>Thu, 05 Mar 2026 08:00:00 GMT</pubDate></item></channel></rss>"""


@pytest.fixture
def two_sources(tmp_path, x_registered):
    config = parse_config(
        {
            "monitor": {"database": str(tmp_path / "m.db")},
            "sources": {
                "trt-x": {"type": "x", "handle": "TRTWorldNow", "bearer_token": TOKEN},
                "aa": {"type": "feed", "url": "https://www.aa.com.tr/en/rss/default?cat=guncel"},
            },
        },
        env={},
    )
    store = Store(config.database)
    store.sync_sources((s.id, s.type, s.describe()) for s in config.sources.values())
    yield config, store
    store.close()


async def test_x_failing_leaves_the_other_sources_stored_normally(two_sources):
    config, store = two_sources
    with respx.mock:
        respx.get(f"{API}/users/by/username/TRTWorldNow").respond(
            401, content=fixture("api-error-401-unauthorized.json")
        )
        respx.get("https://www.aa.com.tr/en/rss/default?cat=guncel").respond(200, content=RSS)
        async with Http() as http:
            rx = await run_source(config.sources["trt-x"], config, store, http)
            ra = await run_source(config.sources["aa"], config, store, http)
    assert not rx.ok and rx.http_status == 401 and "`bearer_token`" in rx.error
    assert ra.ok and ra.new == 1
    row = store.source("trt-x")
    assert row["failures"] == 1 and "`bearer_token`" in row["last_error"]
    assert TOKEN not in row["last_error"]
    assert store.source("aa")["failures"] == 0
    titles = [r[0] for r in store.db.execute("SELECT title FROM posts WHERE source_id = 'aa'")]
    assert titles == ["NATO foreign ministers meet in Antalya"]


async def test_rate_limited_x_source_is_next_due_at_the_reset_time(two_sources):
    config, store = two_sources
    reset = int(time.time()) + 3 * 3600  # past the source's own backoff (15 min, doubling)
    with respx.mock:
        respx.get(f"{API}/users/by/username/TRTWorldNow").respond(
            429, content=fixture("api-error-429-too-many-requests.json"),
            headers={"x-rate-limit-reset": str(reset)},
        )  # fmt: skip
        async with Http() as http:
            result = await run_source(config.sources["trt-x"], config, store, http)
    assert not result.ok and result.error.startswith("rate limited by the X API until")
    due = iso_to_epoch(store.source("trt-x")["next_attempt_at"])
    assert reset - 2 <= due <= reset + 2
