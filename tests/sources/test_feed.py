"""The feed source: RSS/RDF/Atom/JSON Feed parsing, the feedparser fallback, and collect()."""

from __future__ import annotations

import contextlib
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import pytest
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.feeds.document as feed_module
from monitor.errors import ParseError
from monitor.http import Http
from monitor.models import Media, Post
from monitor.sources.base import FetchContext
from monitor.sources.feed import FeedSource, parse_feed
from monitor.text import html_to_text
from monitor.xmlsafe import UnsafeXML
from tests.conftest import FIXTURES, REALDATA

FEEDS = FIXTURES / "feeds"
URL = "https://feeds.example.org/news/feed.xml"


def fixture(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def by_id(posts: list[Post]) -> dict[str, Post]:
    return {p.external_id: p for p in posts}


# --- small fixtures ------------------------------------------------------------------------


def test_relative_links_are_made_absolute_against_the_channel_link():
    post = parse_feed(fixture("rss2-relative-html-media.xml"), URL)[0]
    assert post.url == "https://en.example.ru/events/news/73001"
    assert (
        Media(
            url="https://en.example.ru/images/73001.jpg",
            medium="image",
            type="image/jpeg",
            width=1200,
            height=800,
            role="content",
        )
        in post.media
    )


def test_xml_base_wins_over_the_feed_link_and_the_feed_link_over_the_feed_url():
    posts = parse_feed(fixture("atom-xmlbase-types.xml"), "https://www.example.fr/feed.atom")
    first, second = posts
    assert first.url == "https://www.example.fr/2025/03/declaration-conjointe"
    assert first.media == (
        Media(
            url="https://www.example.fr/2025/03/declaration.pdf",
            type="application/pdf",
            role="enclosure",
        ),
    )
    assert second.url == "https://www.example.fr/en/statement"


def test_feed_url_is_the_base_when_the_feed_has_no_link():
    body = b"<rss><channel><item><title>t</title><link>../a/1</link></item></channel></rss>"
    assert parse_feed(body, URL)[0].url == "https://feeds.example.org/a/1"


def test_channel_link_without_scheme_is_taken_as_a_host():
    body = (
        b"<rss><channel><link>www.example.com.br</link>"
        b"<item><title>t</title><link>/2024/07/a</link></item></channel></rss>"
    )
    assert parse_feed(body, URL)[0].url == "http://www.example.com.br/2024/07/a"


def test_html_descriptions_become_text_and_the_fullest_body_wins():
    post = parse_feed(fixture("rss2-relative-html-media.xml"), URL)[0]
    # content:encoded is longer than the description, so it is the text; <script> is dropped.
    assert post.text == (
        "The President held a meeting with permanent members of the Security Council.\n\n"
        "The discussion focused on NATO troops near Ukraine."
    )


def test_description_entities_and_nbsp_are_decoded():
    body = (
        b"<rss><channel><item><title>t</title><description>"
        b"&lt;p&gt;Tom &amp;amp; Jerry&amp;nbsp;again&lt;/p&gt;</description></item></channel></rss>"
    )
    assert parse_feed(body, URL)[0].text == "Tom & Jerry again"


def test_title_that_is_escaped_html_becomes_plain_text():
    posts = parse_feed(fixture("rss2-relative-html-media.xml"), URL)
    assert posts[0].title == "Meeting with Security Council members"
    assert posts[1].title == "Telephone conversation with the Prime Minister of India"


def test_atom_text_constructs_follow_their_type():
    first, second = parse_feed(fixture("atom-xmlbase-types.xml"), URL)
    assert first.title == "Déclaration conjointe & communiqué"  # type="html"
    assert second.title == "Plain <title> text"  # type="text": markup is literal
    assert first.text == (
        "Le Président a reçu le Premier ministre.\n\nDeuxième paragraphe, plus long que le résumé."
    )  # type="xhtml", longer than the summary
    assert second.text == "English statement."


def test_dates_are_normalised_to_utc():
    rss = parse_feed(fixture("rss2-relative-html-media.xml"), URL)
    assert rss[0].published_at == "2025-03-04T12:30:00Z"  # +0300
    assert rss[1].published_at == "2025-03-03T23:10:00Z"  # GMT
    atom = parse_feed(fixture("atom-xmlbase-types.xml"), URL)
    assert atom[0].published_at == "2025-03-04T09:00:00Z"  # only <updated>, +01:00
    assert atom[1].published_at == "2025-03-03T13:15:30Z"  # <published> beats <updated>
    rdf = parse_feed(fixture("rss1-rdf.xml"), URL)
    assert rdf[0].published_at == "2025-01-25T18:03:02Z"  # dc:date


def test_dates_feedparser_knows_and_we_do_not_still_parse():
    # A Greek RFC 822 date: our parser gives up, feedparser's date handlers do not.
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss><channel><item><title>t</title>'
        "<pubDate>Τρι, 29 Ιούν 2004 12:53:00 GMT</pubDate></item></channel></rss>"
    ).encode()
    assert parse_feed(body, URL)[0].published_at == "2004-06-29T12:53:00Z"


def test_media_content_thumbnail_group_and_enclosure_are_kept():
    post = parse_feed(fixture("rss2-relative-html-media.xml"), URL)[0]
    assert post.media == (
        Media(
            url="https://en.example.ru/images/73001.jpg",
            medium="image",
            type="image/jpeg",
            width=1200,
            height=800,
            role="content",
        ),
        Media(
            url="https://en.example.ru/images/73001-small.jpg",
            medium="image",
            width=240,
            height=160,
            role="thumbnail",
        ),
        Media(
            url="https://cdn.example.ru/video/73001.mp4",
            medium="video",
            type="video/mp4",
            duration=93.5,
            role="content",
        ),
        Media(url="https://cdn.example.ru/video/73001.jpg", medium="image", role="thumbnail"),
        Media(
            url="https://cdn.example.ru/audio/73001.mp3",
            medium="audio",
            type="audio/mpeg",
            role="enclosure",
        ),
    )


@pytest.mark.parametrize(
    "children",
    [
        # one kind of media element (read from the item's fields), and several kinds
        # interleaved (read in the item's order)
        ['<media:content url="/1.jpg"/>', '<media:content url="/2.jpg"/>'],
        ['<enclosure url="/1.mp3" type="audio/mpeg"/>', '<media:content url="/2.jpg"/>',
         '<enclosure url="/3.mp3" type="audio/mpeg"/>', '<media:thumbnail url="/4.jpg"/>'],
    ],
)  # fmt: skip
def test_media_keep_the_order_the_item_lists_them_in(children: list[str]):
    body = (
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        "<link>https://example.org/</link><item><guid>1</guid><title>t</title>"
        + "<description>d</description>".join(children)
        + "</item></channel></rss>"
    ).encode()
    [post] = parse_feed(body, URL)
    assert [m.url.rsplit("/", 1)[1][0] for m in post.media] == ["1", "2", "3", "4"][: len(children)]


def test_external_id_is_the_guid_else_the_link_else_a_stable_hash():
    posts = parse_feed(fixture("rss2-relative-html-media.xml"), URL)
    assert posts[0].external_id == "kremlin-73001"  # guid, even when not a permalink
    assert posts[1].external_id == "https://en.example.ru/events/news/73000"
    assert posts[2].external_id.startswith("sha1:")
    again = parse_feed(fixture("rss2-relative-html-media.xml"), URL)
    assert posts[2].external_id == again[2].external_id


def test_items_without_title_or_date_get_distinct_ids():
    body = (
        b"<rss><channel><item><description>one</description></item>"
        b"<item><description>two</description></item></channel></rss>"
    )
    first, second = parse_feed(body, URL)
    assert first.external_id != second.external_id


def test_permalink_guid_is_the_link_when_there_is_no_link():
    body = (
        b"<rss><channel><item><title>t</title><guid>https://example.org/a/1</guid></item>"
        b'<item><title>u</title><guid isPermaLink="false">https://example.org/a/2</guid></item>'
        b"</channel></rss>"
    )
    first, second = parse_feed(body, URL)
    assert first.url == "https://example.org/a/1"
    assert second.url is None


def test_authors_come_from_dc_creator_rss_author_and_atom_feed_author():
    rss = parse_feed(fixture("rss2-relative-html-media.xml"), URL)
    assert [p.author for p in rss] == ["Press Service", "Press Office", None]
    atom = parse_feed(fixture("atom-xmlbase-types.xml"), URL)
    assert [p.author for p in atom] == ["Présidence de la République", "Spokesperson"]


def test_language_comes_from_the_feed_and_is_normalised():
    assert parse_feed(fixture("rss2-relative-html-media.xml"), URL)[0].lang == "en-GB"
    assert [p.lang for p in parse_feed(fixture("atom-xmlbase-types.xml"), URL)] == ["fr", "en"]
    assert parse_feed(fixture("rss1-rdf.xml"), URL)[0].lang == "de"


def test_every_post_is_an_article():
    for name in ("rss2-relative-html-media.xml", "atom-xmlbase-types.xml", "rss1-rdf.xml"):
        assert {p.kind for p in parse_feed(fixture(name), URL)} == {"article"}


def test_rss1_rdf_items_are_read_in_their_declared_encoding():
    (post,) = parse_feed(fixture("rss1-rdf.xml"), URL)
    assert post.title == "Glasfaserförderung für Städte"
    assert post.url == "https://www.example.de/news/1?utm=rss"
    assert post.external_id == "https://www.example.de/news/1"  # rdf:about
    assert post.author == "Redaktion"


def test_elements_in_an_unexpected_default_namespace_are_still_read():
    # Suspilne puts <rss xmlns="https://cyber.harvard.edu/rss/rss.html">: every element is
    # namespaced, and a namespace-strict reader would find nothing.
    body = (
        b'<rss xmlns="https://cyber.harvard.edu/rss/rss.html" version="2.0"><channel>'
        b"<item><title>t</title><link>https://example.org/1</link>"
        b"<pubdate>Fri, 22 Dec 2023 01:04:55 +0200</pubdate></item></channel></rss>"
    )
    (post,) = parse_feed(body, URL)
    assert (post.title, post.url) == ("t", "https://example.org/1")
    assert post.published_at == "2023-12-21T23:04:55Z"  # lower-case <pubdate> too


def test_json_feed_items():
    posts = parse_feed(fixture("jsonfeed-1.1.json"), "https://www.example.int/feed.json")
    assert len(posts) == 2  # the item that is not an object is skipped
    first, second = posts
    assert first.external_id == "1001"  # a numeric id, as some producers write it
    assert first.url == "https://www.example.int/news/1001.html"  # against home_page_url
    assert first.title == "Allies agree & sign statement"
    assert first.text == "Allies agreed on a joint statement."  # content_html, script dropped
    assert first.published_at == "2025-03-04T11:00:00Z"
    assert first.author == "NATO Press Office"  # feed-level authors (1.1)
    assert first.lang == "en-GB"
    assert first.media == (
        Media(url="https://www.example.int/img/1001.jpg", medium="image", role="image"),
        Media(
            url="https://cdn.example.int/1001.mp4",
            medium="video",
            type="video/mp4",
            duration=61.0,
            role="enclosure",
        ),
    )
    assert second.url == "https://other.example.org/story"  # external_url when no url
    assert second.text == "Plain text only."
    assert second.published_at == "2025-03-03T09:00:00Z"  # date_modified as a fallback
    assert (second.author, second.lang) == ("Guest Author", "fr")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"version": "https://jsonfeed.org/version/1", "items": 3}',
        b"{" + b'"a":[' * 100_000 + b"]" * 100_000 + b"}",  # RecursionError inside json
        b'{"items": [1, 2]}\xff',
    ],
)
def test_json_that_is_not_a_json_feed_is_a_parse_error(body: bytes):
    with pytest.raises(ParseError):
        parse_feed(body, URL)


def test_http_charset_is_used_when_the_document_declares_none(monkeypatch):
    body = "<rss><channel><item><title>Notícias do Brasil</title></item></channel></rss>"
    latin1 = body.encode("latin-1")

    def no_fallback(*args, **kwargs):
        raise AssertionError("the fast path should have read this")

    monkeypatch.setattr(feed_module, "_feedparser_posts", no_fallback)
    posts = parse_feed(latin1, URL, "text/xml; charset=ISO-8859-1")
    assert posts[0].title == "Notícias do Brasil"


def test_leading_blank_lines_before_the_xml_declaration_take_the_fast_path(monkeypatch):
    monkeypatch.setattr(feed_module, "_feedparser_posts", None)  # calling it would fail
    body = b'\n\n\n<?xml version="1.0"?><rss><channel><item><title>t</title></item></channel></rss>'
    assert parse_feed(body, URL)[0].title == "t"


def test_broken_feed_falls_back_to_feedparser():
    # &nbsp; is not an XML entity: lxml refuses the document, feedparser reads it.
    body = (
        b'<rss version="2.0"><channel><item><title>A&nbsp;B</title>'
        b"<link>https://example.org/1</link><pubDate>Mon, 03 Mar 2025 10:00:00 GMT</pubDate>"
        b"<media:content xmlns:media='http://search.yahoo.com/mrss/' url='https://x.org/i.jpg'"
        b" medium='image'/></item></channel></rss>"
    )
    (post,) = parse_feed(body, URL)
    assert post.title == "A B"
    assert post.url == "https://example.org/1"
    assert post.published_at == "2025-03-03T10:00:00Z"
    assert post.media == (Media(url="https://x.org/i.jpg", medium="image", role="content"),)


def test_windows_1252_code_points_written_as_c1_controls_are_repaired():
    body = "<rss><channel><item><description>don\x92t</description></item></channel></rss>"
    assert parse_feed(body.encode(), URL)[0].text == "don\u2019t"


@pytest.fixture
def feedparser_calls(monkeypatch) -> list[object]:
    calls: list[object] = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError("feedparser must not see this document")

    monkeypatch.setattr(feedparser, "parse", spy)
    return calls


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel><item>'
        b"<title>&x;&nbsp;</title></item></channel></rss",
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        b"<rss><channel><item><title>&b;&nbsp;</title></channel>",
        b"<rss><channel><item><title>x&nbsp;</title>" + b"<div>" * 5000,
    ],
    ids=["xxe", "entity-expansion", "deep-nesting"],
)
def test_hostile_broken_documents_never_reach_feedparser(body: bytes, feedparser_calls):
    with pytest.raises(UnsafeXML):
        parse_feed(body, URL)
    assert feedparser_calls == []


def test_a_body_naming_a_local_file_is_not_opened(tmp_path: Path):
    secret = tmp_path / "secret.xml"
    secret.write_text("<rss><channel><item><title>SECRET</title></item></channel></rss>")
    # feedparser.parse(bytes) would open a file of that name; parse_feed must not.
    with pytest.raises(ParseError) as err:
        parse_feed(str(secret).encode(), URL)
    assert "SECRET" not in str(err.value)


def test_html_page_is_not_a_feed():
    body = b"<!DOCTYPE html><html><head><title>404</title></head><body><p>Not found<br></body>"
    with pytest.raises(ParseError, match="HTML page"):
        parse_feed(body, URL)


def test_well_formed_xml_that_is_not_a_feed_is_a_parse_error():
    with pytest.raises(ParseError, match="<urlset>"):
        parse_feed(b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>', URL)


def test_empty_feed_gives_no_posts():
    assert parse_feed(b'<rss version="2.0"><channel><title>t</title></channel></rss>', URL) == []


def test_truncated_feed_without_items_is_a_parse_error():
    with pytest.raises(ParseError, match="no items"):
        parse_feed(b'<?xml version="1.0"?><rss version="2.0"><channel><title>Reuters', URL)


FEED_SEED = fixture("rss2-relative-html-media.xml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_feeds_give_posts_or_a_parse_error(data):
    cut = data.draw(st.integers(0, len(FEED_SEED)))
    junk = data.draw(st.binary(max_size=20))
    at = data.draw(st.integers(0, cut))
    body = FEED_SEED[:at] + junk + FEED_SEED[at:cut]
    try:
        posts = parse_feed(body, URL)
    except ParseError:
        return
    assert all(isinstance(p, Post) and p.external_id for p in posts)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_posts_or_a_parse_error(body: bytes):
    with contextlib.suppress(ParseError):
        parse_feed(body, URL)


# --- collect() -----------------------------------------------------------------------------


async def test_collect_returns_the_posts_of_a_fetched_feed():
    src = FeedSource(id="kremlin", type="feed", url=URL)
    with respx.mock:
        respx.get(URL).mock(
            return_value=httpx.Response(
                200,
                content=fixture("rss2-relative-html-media.xml"),
                headers={"content-type": "application/rss+xml", "etag": '"v1"'},
            )
        )
        http = Http()
        try:
            ctx = FetchContext(http=http, state={}, timeout=5)
            result = await src.collect(ctx)
        finally:
            await http.aclose()
    assert result.http_status == 200 and not result.not_modified
    assert [p.external_id for p in result.posts][:2] == [
        "kremlin-73001",
        "https://en.example.ru/events/news/73000",
    ]
    assert ctx.state["validators"][URL] == {"etag": '"v1"'}


async def test_collect_reports_not_modified_on_304():
    src = FeedSource(id="kremlin", type="feed", url=URL)
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("if-none-match"))
        return httpx.Response(304)

    with respx.mock:
        respx.get(URL).mock(side_effect=answer)
        http = Http()
        try:
            state = {"validators": {URL: {"etag": '"v1"'}}}
            result = await src.collect(FetchContext(http=http, state=state, timeout=5))
        finally:
            await http.aclose()
    assert seen == ['"v1"']
    assert (result.posts, result.http_status, result.not_modified) == ([], 304, True)


def test_validate_wants_an_http_url():
    assert FeedSource(id="a", type="feed", url="https://x.org/f").validate() == []
    assert FeedSource(id="a", type="feed", url="ftp://x.org/f").validate() == [
        "url: must be an http:// or https:// URL"
    ]


# --- real captures -------------------------------------------------------------------------


def realdata_feeds() -> list[Path]:
    if not REALDATA.is_dir():
        return []
    paths = [p for d in ("rss", "atom", "jsonfeed") for p in (REALDATA / d).glob("*")]
    paths += (REALDATA / "youtube").glob("channel-feed-*.xml")
    paths += (REALDATA / "mastodon").glob("account-rss-*.xml")
    return sorted(paths)


def rel(path: Path) -> str:
    return path.relative_to(REALDATA).as_posix()


FEED_FILES = realdata_feeds()
FEED_IDS = [rel(p) for p in FEED_FILES]

# Deliberately broken captures with no readable item: a clean ParseError is the right answer.
NO_ITEMS_ERROR = {
    "rss/edge-reuters-most-read-truncated-server-exception.xml": "truncated before any <item>",
    "rss/edge-utf8-bom-invalid-bytes.xml": "unclosed </rss and no <item>",
}

# Where parse_feed and feedparser differ on purpose. Keep this short and say why.
DISAGREEMENTS = {
    ("rss/aif-ru-news-yandex-turbo-2019.xml", "link"): (
        "feedparser takes the last <link> nested inside <yandex:related> as the item link; "
        "ours is the item's own <link>"
    ),
    ("rss/skysports-liverpool-xsl-bst.xml", "date"): (
        "feedparser reads 'BST' as UTC; it is British Summer Time, UTC+1"
    ),
    ("rss/edge-uol-noticias-latin1-no-decl.xml", "date"): (
        "feedparser rejects the Portuguese weekday in 'Sex, 03 Jan 2025 23:47:02 -0300'; "
        "the weekday carries no information and the rest is RFC 822"
    ),
    ("rss/news18-hindi-world-china.xml", "date"): (
        "feedparser cannot read 'Friday, January 29, 2021 04:42 PM'; we read a date (see "
        "test_twelve_hour_clock_times_are_read for the PM hour)"
    ),
    ("rss/nbc-new-york-rss-2023.xml", "date"): (
        "feedparser ignores the PM in 'Sat, Dec 16 2023 02:02:33 PM' and reads 02:02"
    ),
    ("rss/muhasebetr-turkish-iso8859-9.xml", "date"): (
        "feedparser cannot read day-first dotted dates such as '07.02.2025'; we read them (see "
        "test_day_first_dotted_dates_are_read)"
    ),
    ("rss/edge-koi8r-russian-no-encoding-decl.xml", "title"): (
        "feedparser without chardet reads the undeclared KOI8-R as Windows-1252 ('ëÁË "
        "ÐÅÒÅÖÉÔØ'); we guess KOI8-R from how the words read, as feedparser's own test "
        "expects once chardet is installed"
    ),
}


def norm_title(title: str | None, html: bool) -> str | None:
    if not title:
        return None
    return " ".join((html_to_text(title) if html else title).split()) or None


def reference(path: Path) -> list[dict[str, str | None]]:
    """What an independent reader finds in each item: title, link, date (UTC, to the second)."""
    body = path.read_bytes()
    if path.suffix == ".json":
        # feedparser 6.0 has no JSON Feed support, so JSON is read with json/fromisoformat.
        items = [i for i in json.loads(body)["items"] if isinstance(i, dict)]
        out = []
        for i in items:
            date = i.get("date_published") or i.get("date_modified")
            when = datetime.fromisoformat(date.replace("Z", "+00:00")) if date else None
            out.append(
                {
                    "title": norm_title(i.get("title"), False),
                    "link": i.get("url") or i.get("external_url"),
                    "date": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None,
                    "raw_date": date,
                }
            )
        return out
    d = feedparser.parse(io.BytesIO(body), response_headers={"content-location": URL})
    out = []
    seen = set()
    for e in d.entries:
        # An item listed twice is one post, as in parse_feed. The title is part of the key
        # because feedparser's links can be wrong (see DISAGREEMENTS).
        key = (e.get("id") or e.get("link"), e.get("title"))
        if key[0] and key in seen:
            continue
        seen.add(key)
        if not (e.get("title") or e.get("link") or e.get("summary") or e.get("content")):
            continue  # an item with nothing in it: parse_feed drops it too
        # dict.get: feedparser's get() maps a missing `updated` to `published`, with a warning.
        parsed = dict.get(e, "published_parsed") or dict.get(e, "updated_parsed")
        html = e.get("title_detail", {}).get("type") != "text/plain"
        out.append(
            {
                "title": norm_title(e.get("title"), html),
                "link": e.get("link"),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed) if parsed else None,
                "raw_date": dict.get(e, "published") or dict.get(e, "updated"),
            }
        )
    return out


@pytest.mark.parametrize("path", FEED_FILES, ids=FEED_IDS)
def test_every_realdata_feed_gives_posts_or_a_clean_parse_error(path: Path):
    try:
        posts = parse_feed(path.read_bytes(), URL)
    except ParseError as e:
        assert rel(path) in NO_ITEMS_ERROR, f"unexpected ParseError: {e}"
        return
    assert rel(path) not in NO_ITEMS_ERROR
    assert all(isinstance(p, Post) for p in posts)
    assert len({p.external_id for p in posts}) == len(posts), "external ids must be unique"


@pytest.mark.parametrize("path", FEED_FILES, ids=FEED_IDS)
def test_realdata_feed_agrees_with_an_independent_reader(path: Path):
    name = rel(path)
    ref = reference(path)
    try:
        posts = parse_feed(path.read_bytes(), URL)
    except ParseError:
        assert name in NO_ITEMS_ERROR and ref == []
        return
    assert len(posts) == len(ref)
    if any(r["title"] for r in ref):
        assert posts, "items found"
    for post, want in zip(posts, ref, strict=True):
        got = {"title": post.title, "link": post.url, "date": post.published_at}
        for field in ("title", "link", "date"):
            if (name, field) in DISAGREEMENTS:
                continue
            assert got[field] == want[field], f"{field} of {post.external_id}"
        # Non-empty wherever the source has the field, whatever the reference made of it.
        if want["title"]:
            assert post.title
        if want["link"]:
            assert post.url and post.url.startswith(("http://", "https://"))
        if want["date"]:
            assert post.published_at


# Dates neither we nor feedparser read. They belong in monitor.text.parse_date (reported).
UNREAD_DATES = {
    "rss/fda-drug-recalls-drupal.xml": "Drupal's 'Fri, 05/03/2019 - 15:21'",
}


@pytest.mark.parametrize("path", FEED_FILES, ids=FEED_IDS)
def test_realdata_dates_are_read_wherever_the_source_has_one(path: Path):
    if rel(path) in NO_ITEMS_ERROR:
        return
    posts = parse_feed(path.read_bytes(), URL)
    missing = [
        want["raw_date"]
        for post, want in zip(posts, reference(path), strict=True)
        if want["raw_date"] and not post.published_at
    ]
    if rel(path) in UNREAD_DATES:
        assert missing, "these dates are read now: drop the exception"
    else:
        assert missing == []


UNDECLARED_LEGACY = {
    # No BOM, no declaration, no HTTP charset, not UTF-8: the code page is guessed.
    "rss/edge-koi8r-russian-no-encoding-decl.xml": "Как пережить новогоднюю ночь",
    "rss/edge-uol-noticias-latin1-no-decl.xml": "Artur Jorge não é mais técnico do Botafogo",
}


@pytest.mark.parametrize("name", sorted(UNDECLARED_LEGACY))
def test_undeclared_legacy_encodings_are_read_in_the_code_page_their_words_fit(name: str):
    if not REALDATA.is_dir():
        pytest.skip("realdata not present")
    titles = [p.title for p in parse_feed((REALDATA / name).read_bytes(), URL)]
    assert UNDECLARED_LEGACY[name] in titles


def test_the_documented_disagreements_still_exist():
    """An exception that no longer applies is removed from DISAGREEMENTS, not kept 'just in case'."""
    if not REALDATA.is_dir():
        pytest.skip("realdata not present")
    for (name, field), _reason in DISAGREEMENTS.items():
        path = REALDATA / name
        ref = reference(path)
        posts = parse_feed(path.read_bytes(), URL)
        ours = [{"title": p.title, "link": p.url, "date": p.published_at}[field] for p in posts]
        assert ours != [r[field] for r in ref], f"{name}: {field} now agrees; drop the exception"


def test_realdata_dates_feedparser_misses_are_right(realdata: Path):
    uol = parse_feed((realdata / "rss/edge-uol-noticias-latin1-no-decl.xml").read_bytes(), URL)
    assert uol[0].published_at == "2025-01-04T02:47:02Z"  # Sex, 03 Jan 2025 23:47:02 -0300
    sky = parse_feed((realdata / "rss/skysports-liverpool-xsl-bst.xml").read_bytes(), URL)
    assert sky[0].published_at == "2019-05-17T05:00:00Z"  # Fri, 17 May 2019 06:00:00 BST


def test_day_first_dotted_dates_are_read(realdata: Path):
    # MuhasebeTR writes <pubDate>07.02.2025</pubDate>: 7 February, as Turkey writes dates.
    body = (realdata / "rss/muhasebetr-turkish-iso8859-9.xml").read_bytes()
    posts = parse_feed(body, URL)
    assert posts[0].title == "Pillar 2"
    assert posts[0].published_at == "2025-02-07T00:00:00Z"
    assert all(p.published_at for p in posts)


def test_twelve_hour_clock_times_are_read(realdata: Path):
    nbc = parse_feed((realdata / "rss/nbc-new-york-rss-2023.xml").read_bytes(), URL)
    # "Sat, Dec 16 2023 02:02:33 PM" in a feed whose own dates are -0500 (New York).
    assert nbc[0].published_at == "2023-12-16T19:02:33Z"


def test_item_times_without_a_zone_are_in_the_zone_of_the_feeds_own_dates(realdata: Path):
    # News18 Hindi: <lastBuildDate>January, 29 Jan 2021 17:56:15 +0530</lastBuildDate>, items
    # "Friday, January 29, 2021 04:42 PM". Read as UTC they were published hours after the
    # feed itself was built; they are India time.
    posts = parse_feed((realdata / "rss/news18-hindi-world-china.xml").read_bytes(), URL)
    assert [p.published_at for p in posts] == ["2021-01-29T11:12:00Z", "2021-01-29T11:24:00Z"]
    assert all(p.published_at < "2021-01-29T12:26:15Z" for p in posts)  # the build time


def test_only_item_times_without_a_zone_take_the_feeds_zone():
    body = (
        b"<rss><channel><lastBuildDate>Mon, 03 Mar 2025 12:00:00 +0300</lastBuildDate>"
        b"<item><title>a</title><pubDate>Mon, 03 Mar 2025 10:00:00 GMT</pubDate></item>"
        b"<item><title>b</title><pubDate>2025-03-03</pubDate></item>"
        b"<item><title>c</title><pubDate>2025-03-03T10:00:00</pubDate></item>"
        b"</channel></rss>"
    )
    a, b, c = parse_feed(body, URL)
    assert a.published_at == "2025-03-03T10:00:00Z"
    assert b.published_at == "2025-03-03T00:00:00Z"  # a day, no time: left as it was
    assert c.published_at == "2025-03-03T07:00:00Z"


def test_realdata_text_and_media_are_kept(realdata: Path):
    nyt = parse_feed((realdata / "rss/nytimes-homepage-top-stories-2023.xml").read_bytes(), URL)
    assert nyt[0].author == "Steven Erlanger" and nyt[0].lang == "en-us"
    assert nyt[0].text.startswith("Considered authoritarian and corrupt")
    assert nyt[0].media[0].medium == "image" and nyt[0].media[0].width == 1800
    yt = REALDATA / "youtube/channel-feed-DigitalFoundry-UC9PBzalIcEQCsiIkq36PyUA.xml"
    video = parse_feed(yt.read_bytes(), URL)[0]
    assert video.external_id == "yt:video:W_S7iKZZdHw"
    assert video.text.startswith("As the holiday period begins")  # media:group/description
    assert (
        Media(
            url="https://i4.ytimg.com/vi/W_S7iKZZdHw/hqdefault.jpg",
            medium="image",
            width=480,
            height=360,
            role="thumbnail",
        )
        in video.media
    )
    masto = REALDATA / "mastodon/account-rss-mastodon.art-nuclearpasta.xml"
    toot = parse_feed(masto.read_bytes(), URL)[0]
    assert toot.title is None and toot.text.startswith("Oh it's #WebcomicDay again!")
    assert len([m for m in toot.media if m.role == "content"]) == 4


def test_realdata_latin1_feed_takes_the_fast_path_with_an_http_charset(realdata, monkeypatch):
    monkeypatch.setattr(feed_module, "_feedparser_posts", None)  # calling it would fail
    body = (realdata / "rss/edge-uol-noticias-latin1-no-decl.xml").read_bytes()
    posts = parse_feed(body, URL, "application/rss+xml; charset=ISO-8859-1")
    assert posts[0].title == "Artur Jorge não é mais técnico do Botafogo"


# Not edge-cdata-mojibake-linenoise.xml: its one byte that is not UTF-8 is one U+FFFD now,
# and the rest of the document is well-formed.
NEED_FALLBACK = {
    "rss/edge-incomplete-cdata.xml",
    "rss/edge-link-ampersands-unclosed-rss.xml",
    "rss/edge-reuters-most-read-truncated-server-exception.xml",
    "rss/edge-utf8-bom-invalid-bytes.xml",
}


def test_only_broken_realdata_feeds_need_feedparser(realdata, monkeypatch):
    used: list[str] = []
    real = feed_module._feedparser_posts

    def spy(body, url, content_type, root_name):
        used.append(current)
        return real(body, url, content_type, root_name)

    monkeypatch.setattr(feed_module, "_feedparser_posts", spy)
    for path in FEED_FILES:
        current = rel(path)
        with contextlib.suppress(ParseError):
            parse_feed(path.read_bytes(), URL)
    assert set(used) == NEED_FALLBACK


def test_items_with_nothing_in_them_are_dropped_not_merged_into_one_post():
    body = (
        b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>"
        b"<item><title>Lavrov on NATO troops</title><link>https://tass.com/1</link></item>"
        b"<item><title></title></item><item><description></description></item>"
        b"</channel></rss>"
    )
    posts = parse_feed(body, URL)
    assert [p.url for p in posts] == ["https://tass.com/1"]


def test_an_html_page_in_place_of_a_feed_names_the_feeds_it_links():
    body = (
        b'<!DOCTYPE html><html><head><base href="https://www.aa.com.tr/en/">'
        b'<link rel="alternate" type="application/rss+xml" title="AA \xc2\xbb World" href="rss/world">'
        b'<link rel="Alternate" type="Application/Atom+XML" href="/atom.xml">'
        b'<link rel="alternate" type="application/json" href="/wp-json/wp/v2/posts/1">'
        b'<link rel="alternate" hreflang="tr" href="https://www.aa.com.tr/tr/">'
        b'<link rel="stylesheet" type="text/css" href="/site.css">'
        b"</head><body><p>News</p></body></html>"
    )
    with pytest.raises(ParseError) as err:
        parse_feed(body, "https://www.aa.com.tr/en")
    assert str(err.value) == (
        "not a feed: the response is an HTML page; set url to one of the feeds it names: "
        "https://www.aa.com.tr/en/rss/world (AA » World), https://www.aa.com.tr/atom.xml (Atom)"
    )


def test_a_page_naming_many_feeds_shows_the_first_few():
    links = "".join(
        f'<link rel="alternate" type="application/rss+xml" title="Cat {i}" href="/rss/{i}">'
        for i in range(7)
    )
    body = f"<html><head>{links}</head><body></body></html>".encode()
    with pytest.raises(ParseError, match=r"/rss/2 \(Cat 2\) and 4 more$"):
        parse_feed(body, URL)


def test_a_sitemap_given_as_a_feed_says_which_type_reads_it():
    body = b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>'
    with pytest.raises(ParseError, match=r'a sitemap \(<sitemapindex>\): use type = "sitemap"'):
        parse_feed(body, URL)


@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is not present")
@pytest.mark.parametrize(
    ("name", "feed"),
    [
        (
            "anadolu-ajansi-tr-article-2026.html",
            "https://www.aa.com.tr/tr/rss/ (Anadolu Ajansı » Rss)",
        ),
        # No doctype, <html> or <head>: the capture starts at its <meta charset=windows-1254>.
        ("muhasebetr-turkish-article-windows-1254.html", "https://www.muhasebetr.com/rss/ (RSS)"),
        ("cnn-international-homepage-listing-2014.html", "http://rss.cnn.com/rss/edition.rss"),
    ],
)
def test_real_pages_given_as_feeds_name_their_feeds(name: str, feed: str):
    with pytest.raises(ParseError) as err:
        parse_feed((REALDATA / "html" / name).read_bytes(), "https://example.org/news/")
    assert "set url to one of the feeds it names: " + feed in str(err.value)
