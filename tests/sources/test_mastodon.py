"""The `mastodon` source: real API answers (JSON and VCR cassettes), written ones, and paging."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest
import respx

from monitor.config import build
from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.sources.base import FetchContext
from monitor.sources.mastodon import MastodonSource, account_name, parse_status, parse_statuses
from tests.conftest import real_bytes

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata" / "mastodon"
FIXTURES = REPO / "fixtures" / "mastodon"
BASE = "https://mastodon.social/api/v1"
ACCOUNT_ID = "109318776328472117"


def real(name: str) -> bytes:
    return real_bytes(REALDATA / name)


def cassette(name: str) -> list[dict]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(real(name))["interactions"]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def source(**kw) -> MastodonSource:
    return MastodonSource(
        **{"id": "masto", "type": "mastodon", "account": "@outletnews@mastodon.social", **kw}
    )


# --- real answers ---------------------------------------------------------------------------


def test_old_public_timeline_parses_every_status():
    page = parse_statuses(real("public-timeline-mstdn.jp-2017.json"), "timeline", "mstdn.jp")
    assert page.count == len(page.posts) == 20
    assert (page.newest_id, page.oldest_id) == ("172429", "172398")
    first = page.posts[0]
    assert first.external_id == "tag:mstdn.jp,2017-04-14:objectId=172429:objectType=Status"
    assert first.url == "https://mstdn.jp/@iorin0225/172429"
    assert first.author == "イオリン (@iorin0225@mstdn.jp)"
    assert first.text == "電話であれ、テキストであれ、伝達能力はしっかり鍛えてほしい。"
    assert first.published_at == "2017-04-14T06:11:41Z"
    assert first.lang is None  # Mastodon 1.x had no `language`
    assert all(p.author and p.url and p.published_at for p in page.posts)
    # Accounts of other servers carry their domain in `acct` already.
    assert page.posts[1].author == "@cocoabottle@mastodon.cloud"


def test_status_with_a_video_card_keeps_the_link_the_picture_and_the_full_url_in_text():
    post = parse_status(
        json.loads(real("status-with-preview-card-fosstodon-2023.json")), "fosstodon.org"
    )
    assert post.author == "jaxwxboss (@jaxwxboss@fosstodon.org)"  # :linux: :casio: taken out
    assert post.lang == "en"
    assert post.kind == "post"  # a card linking a video is not a video post
    assert post.text.startswith("Just a hot take.\n\nNo matter how 'advanced' governments")
    # Mastodon hides part of long links in invisible spans; the text keeps the whole link.
    assert post.text.endswith("https://youtu.be/X_TLztvV4ns?si=uGz-23iyZs0yoe5r")
    link, picture = post.media
    assert link.role == "link" and link.url.startswith("https://www.youtube.com/watch?")
    assert (picture.role, picture.width, picture.height) == ("card", 200, 113)
    assert post.extra["card"]["type"] == "video"
    assert post.extra["card"]["provider_name"] == "YouTube"


def test_cassette_status_pages_parse_and_their_cursor_is_the_servers_next_link():
    pages = [
        i for i in cassette("vcr-cassette-account-statuses-pagination.yaml")
        if i["request"]["method"] == "GET" and "/statuses" in i["request"]["uri"]
    ]  # fmt: skip
    assert len(pages) == 3
    for exchange in pages:
        body = exchange["response"]["body"]["string"].encode()
        page = parse_statuses(body, exchange["request"]["uri"], "localhost:3000")
        assert page.count == 5
        assert all(p.author == "John Lennon (@mastodonpy_test@localhost:3000)" for p in page.posts)
        assert all(p.lang == "en" and p.text.startswith("Toot number") for p in page.posts)
        (link,) = exchange["response"]["headers"]["link"]
        next_link = link.split(",")[0]
        assert 'rel="next"' in next_link and next_link.split("max_id=")[1].startswith(
            page.oldest_id
        )
    first = parse_statuses(pages[0]["response"]["body"]["string"].encode(), "", "localhost:3000")
    assert [p.text for p in first.posts] == [f"Toot number {n}!" for n in (9, 8, 7, 6, 5)]


def test_every_status_in_the_cassettes_parses_deleted_ones_from_their_source_text():
    texts = []
    for name in ("vcr-cassette-account-statuses-pagination.yaml", "vcr-cassette-status-card.yaml"):
        for exchange in cassette(name):
            data = json.loads(exchange["response"]["body"]["string"])
            for status in data if isinstance(data, list) else [data]:
                if "account" in status:  # a status; the other answer is an account
                    post = parse_status(status, "localhost:3000")
                    assert post.url.startswith("http://localhost:3000/@mastodonpy_test/")
                    texts.append((exchange["request"]["method"], post.text))
    assert len(texts) == 38
    assert ("DELETE", "Toot number 0!") in texts and ("DELETE", "http://example.org/") in texts
    assert all(text for _, text in texts)


def test_cassette_card_without_picture_keeps_the_link_only():
    (_, fetched, _) = cassette("vcr-cassette-status-card.yaml")
    post = parse_status(json.loads(fetched["response"]["body"]["string"]), "localhost:3000")
    assert post.text == "http://example.org/"
    assert post.media[0].url == "http://example.org/" and len(post.media) == 1
    assert post.extra["card"] == {
        "url": "http://example.org/",
        "title": "Example Domain",
        "type": "link",
    }


def test_account_rss_is_not_the_api_and_gives_a_clean_parse_error():
    with pytest.raises(ParseError, match="not JSON"):
        parse_statuses(real("account-rss-mastodon.art-nuclearpasta.xml"), "rss")


def test_error_object_instead_of_statuses_is_a_parse_error_with_its_message():
    with pytest.raises(ParseError, match="Record not found"):
        parse_statuses(fixture("error-not-found.json"), "x")


# --- written answers ------------------------------------------------------------------------


def page1() -> dict[str, object]:
    page = parse_statuses(fixture("statuses-page1.json"), "", "mastodon.social")
    return {p.url.rsplit("/", 1)[1]: p for p in page.posts}


def test_video_attachment_makes_a_video_post_with_size_duration_and_preview():
    post = page1()["114100000000000105"]
    assert post.kind == "video"
    video, preview = post.media
    assert (video.medium, video.width, video.height, video.duration) == ("video", 1280, 720, 42.043)
    assert video.url.endswith("/original/114100000000000900.mp4")
    assert (preview.role, preview.width, preview.height) == ("thumbnail", 400, 225)
    assert post.author == "Outlet News (@outletnews@mastodon.social)"  # :verified: taken out
    assert post.text == "Lavrov laughs off a question on NATO troops in Ukraine. #Lavrov"
    assert post.extra["tags"] == ["lavrov"]


def test_boost_is_the_original_status_with_the_booster_kept():
    post = page1()["114099000000000333"]
    assert post.external_id == "https://journa.host/users/jane/statuses/114099000000000333"
    assert post.url == "https://journa.host/@jane/114099000000000333"
    assert post.author == "Jane Reporter (@jane@journa.host)"
    assert post.lang == "fr"
    assert post.published_at == "2026-03-02T09:58:00Z"
    assert post.extra["boosted_by"] == "Outlet News (@outletnews@mastodon.social)"
    assert post.extra["boosted_at"] == "2026-03-02T10:15:00Z"
    assert [m.role for m in post.media] == ["content", "thumbnail", "content", "thumbnail"]


def test_content_warning_leads_the_text_and_a_gifv_is_not_a_video_post():
    post = page1()["114100000000000103"]
    assert post.text == (
        "CW: Graphic footage\n\nFootage from the scene after the strike.\nViewer discretion advised."
    )
    assert post.extra["spoiler_text"] == "Graphic footage" and post.extra["sensitive"] is True
    assert post.kind == "post"
    assert post.media[0].medium == "video" and post.media[0].duration == 3.2


def test_reply_with_card_keeps_link_picture_and_edit_time():
    post = page1()["114100000000000102"]
    url = "https://www.nato.int/cps/en/natohq/news_231234.htm?selectedLocale=en"
    assert post.text == f"@jane Full story: {url}"
    assert [
        (m.role, m.url.endswith("card.jpg") if m.role == "card" else m.url) for m in post.media
    ] == [
        ("link", url),
        ("card", True),
    ]
    assert post.extra["in_reply_to_id"] == "114099000000000333"
    assert post.extra["edited_at"] == "2026-03-02T09:35:10Z"


def test_audio_keeps_its_duration_without_a_bogus_preview_and_poll_options_are_text():
    post = page1()["114100000000000101"]
    (audio,) = post.media  # its preview_url is the mp3 again, not a picture
    assert (audio.medium, audio.duration) == ("audio", 402.860408)
    assert post.text.endswith("\n\n- Air defence\n- Enlargement")
    assert post.extra["poll"][0] == {"title": "Air defence", "votes": 80}


def test_quote_post_puts_the_quoted_words_in_a_block():
    status = json.loads(fixture("statuses-page2.json"))[0]
    quoted = json.loads(fixture("statuses-page1.json"))[0]
    status["quote"] = {"state": "accepted", "quoted_status": quoted}
    post = parse_status(status, "mastodon.social")
    assert post.text.endswith(
        "\n\n> Outlet News (@outletnews@mastodon.social):\n"
        "> Lavrov laughs off a question on NATO troops in Ukraine. #Lavrov"
    )
    assert post.extra["quote"]["url"] == quoted["url"]
    status["quote"] = {"state": "pending", "quoted_status": None}
    assert "quote" not in parse_status(status, "mastodon.social").extra


def test_account_name_falls_back_to_the_handle_and_adds_the_host_to_local_names():
    assert (
        account_name({"acct": "bob", "display_name": ""}, "example.social") == "@bob@example.social"
    )
    assert (
        account_name({"acct": "bob@elsewhere.org", "display_name": "Bob"})
        == "Bob (@bob@elsewhere.org)"
    )


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "account",
    ["@outletnews@mastodon.social", "outletnews@mastodon.social", "@a.b-c@gts.example.org"],
)
def test_fediverse_addresses_are_accepted(account):
    assert source(account=account).validate() == []


@pytest.mark.parametrize(
    "account", ["outletnews", "@outletnews", "https://mastodon.social/@outletnews", "@out news@x.org",
                "@outletnews@localhost"],
)  # fmt: skip
def test_other_account_forms_are_refused_with_the_expected_form(account):
    (problem,) = source(account=account).validate()
    assert problem.startswith("account:") and "'@user@instance'" in problem


def test_config_table_builds_the_source_and_names_bad_keys():
    problems: list[str] = []
    table = {
        "type": "mastodon",
        "account": "@outletnews@mastodon.social",
        "instance": "https://x.org",
    }
    built = build(MastodonSource, table, "sources.m", problems, extra={"id": "m"})
    assert problems == [] and built == source(id="m", instance="https://x.org")
    build(MastodonSource, {"type": "mastodon", "acount": "@a@b.org"}, "sources.m", problems,
          extra={"id": "m"})  # fmt: skip
    assert problems == [
        "sources.m.acount: unknown key (did you mean 'account'?)",
        "sources.m.account: missing (required)",
    ]


def test_instance_and_limit_are_checked():
    problems = source(instance="mastodon.social", limit=0).validate()
    assert [p.split(":")[0] for p in problems] == ["instance", "limit"]


def test_instance_defaults_to_the_accounts_server_and_can_be_overridden():
    assert source().lookup_url() == f"{BASE}/accounts/lookup?acct=outletnews"
    other = source(instance="https://mstdn.example/")
    # Another server knows the account only by its full address.
    assert (
        other.lookup_url()
        == "https://mstdn.example/api/v1/accounts/lookup?acct=outletnews%40mastodon.social"
    )
    assert other.describe() == "@outletnews@mastodon.social via https://mstdn.example"


# --- the fetch loop ---------------------------------------------------------------------------

JSON = {"content-type": "application/json; charset=utf-8"}


def ok(name: str) -> httpx.Response:
    return httpx.Response(200, content=fixture(name), headers=JSON)


async def test_lookup_then_statuses_then_since_id_on_the_second_fetch():
    state: dict = {}
    with respx.mock() as router:
        lookup = router.get(f"{BASE}/accounts/lookup", params={"acct": "outletnews"}).mock(
            return_value=ok("accounts-lookup.json")
        )
        statuses = router.get(f"{BASE}/accounts/{ACCOUNT_ID}/statuses").mock(
            side_effect=[ok("statuses-page1.json"), ok("statuses-later.json")]
        )
        async with Http() as http:
            first = await source(limit=5).collect(FetchContext(http=http, state=state, timeout=5))
            assert state == {
                "account": "@outletnews@mastodon.social",
                "base": "https://mastodon.social",
                "account_id": ACCOUNT_ID,
                "since_id": "114100000000000105",
            }
            second = await source(limit=5).collect(FetchContext(http=http, state=state, timeout=5))
    assert len(first.posts) == 5 and first.http_status == 200
    assert [p.text for p in second.posts] == [
        "Breaking: ministers agree new air-defence package.",
        "Live: press conference in Brussels.",
    ]
    assert lookup.call_count == 1  # the id is kept
    first_query, second_query = (dict(c.request.url.params) for c in statuses.calls)
    assert first_query == {"limit": "5"}
    assert second_query == {"limit": "5", "since_id": "114100000000000105"}
    assert state["since_id"] == "114100000000000107"


async def test_no_new_statuses_keeps_since_id():
    state = {"account": "@outletnews@mastodon.social", "base": "https://mastodon.social",
             "account_id": ACCOUNT_ID, "since_id": "114100000000000107"}  # fmt: skip
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/{ACCOUNT_ID}/statuses").mock(
            return_value=httpx.Response(200, json=[])
        )
        async with Http() as http:
            got = await source().collect(FetchContext(http=http, state=state, timeout=5))
    assert got.posts == [] and state["since_id"] == "114100000000000107"


async def test_stale_account_id_is_looked_up_again_once():
    state = {"account": "@outletnews@mastodon.social", "base": "https://mastodon.social",
             "account_id": "1", "since_id": None}  # fmt: skip
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/1/statuses").mock(
            return_value=httpx.Response(404, content=fixture("error-not-found.json"), headers=JSON)
        )
        lookup = router.get(f"{BASE}/accounts/lookup").mock(return_value=ok("accounts-lookup.json"))
        router.get(f"{BASE}/accounts/{ACCOUNT_ID}/statuses").mock(
            return_value=ok("statuses-page2.json")
        )
        async with Http() as http:
            got = await source().collect(FetchContext(http=http, state=state, timeout=5))
    assert lookup.call_count == 1 and len(got.posts) == 2
    assert state["account_id"] == ACCOUNT_ID


async def test_state_of_another_account_is_not_reused():
    state = {"account": "@other@mastodon.social", "base": "https://mastodon.social",
             "account_id": "42", "since_id": "999999999999999999"}  # fmt: skip
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/lookup").mock(return_value=ok("accounts-lookup.json"))
        statuses = router.get(f"{BASE}/accounts/{ACCOUNT_ID}/statuses").mock(
            return_value=ok("statuses-page2.json")
        )
        async with Http() as http:
            await source().collect(FetchContext(http=http, state=state, timeout=5))
    assert "since_id" not in statuses.calls[0].request.url.params


async def test_unknown_account_fails_with_a_sentence_naming_it():
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/lookup").mock(
            return_value=httpx.Response(404, content=fixture("error-not-found.json"), headers=JSON)
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            with pytest.raises(FetchError, match="no account @outletnews@mastodon.social") as err:
                await source().collect(ctx)
    assert err.value.status == 404


async def test_server_that_wants_sign_in_says_what_to_do():
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/lookup").mock(
            return_value=httpx.Response(
                401, json={"error": "This API requires an authenticated user"}
            )
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            with pytest.raises(FetchError, match="set `instance`"):
                await source().collect(ctx)


async def test_boosts_left_out_are_asked_for_without_reblogs_and_dropped():
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/lookup").mock(return_value=ok("accounts-lookup.json"))
        statuses = router.get(f"{BASE}/accounts/{ACCOUNT_ID}/statuses").mock(
            return_value=ok("statuses-page1.json")
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state={}, timeout=5)
            got = await source(limit=5, include_boosts=False).collect(ctx)
    assert statuses.calls[0].request.url.params["exclude_reblogs"] == "true"
    assert len(got.posts) == 4 and all("boosted_by" not in p.extra for p in got.posts)


class FakeServer:
    """Statuses served as Mastodon pages them: newest first, `limit` (at most 40), `max_id`
    and `since_id` exclusive."""

    def __init__(self, count: int):
        template = json.loads(fixture("statuses-page2.json"))[0]
        self.statuses = []
        for n in range(count, 0, -1):
            status = copy.deepcopy(template)
            status["id"] = str(114_000_000_000_000_000 + n)
            status["uri"] = f"https://mastodon.social/users/outletnews/statuses/{status['id']}"
            status["url"] = f"https://mastodon.social/@outletnews/{status['id']}"
            status["content"] = f"<p>Status {n}</p>"
            self.statuses.append(status)
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        self.queries.append(q)
        rows = self.statuses
        if "max_id" in q:
            rows = [s for s in rows if int(s["id"]) < int(q["max_id"])]
        if "since_id" in q:
            rows = [s for s in rows if int(s["id"]) > int(q["since_id"])]
        return httpx.Response(200, json=rows[: min(int(q["limit"]), 40)])

    def add(self, count: int) -> None:
        newer = FakeServer(len(self.statuses) + count).statuses[:count]
        self.statuses = newer + self.statuses


def numbers(collected) -> list[int]:
    return [int(p.text.split()[1]) for p in collected.posts]


async def test_first_fetch_pages_with_max_id_up_to_limit_and_later_ones_back_to_since_id():
    server = FakeServer(100)
    state: dict = {}
    with respx.mock() as router:
        router.get(f"{BASE}/accounts/lookup").mock(return_value=ok("accounts-lookup.json"))
        router.get(f"{BASE}/accounts/{ACCOUNT_ID}/statuses").mock(side_effect=server)
        async with Http() as http:
            first = await source(limit=50).collect(FetchContext(http=http, state=state, timeout=5))
            assert numbers(first) == list(range(100, 50, -1))
            assert [set(q) for q in server.queries] == [{"limit"}, {"limit", "max_id"}]
            server.queries.clear()
            server.add(45)  # more than one page of new statuses since the last fetch
            ctx = FetchContext(http=http, state=state, timeout=5)
            later = await source(limit=50).collect(ctx)
    assert numbers(later) == list(range(145, 100, -1))
    since = str(114_000_000_000_000_100)
    assert [q.get("since_id") for q in server.queries] == [since, since]
    assert "max_id" in server.queries[1]
    assert state["since_id"] == str(114_000_000_000_000_145)
    assert ctx.log == []
