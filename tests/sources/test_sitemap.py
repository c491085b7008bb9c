"""The sitemap source: urlsets, indexes, Google News, gzip, and following an index in collect()."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest
import respx

from monitor.errors import ParseError
from monitor.http import FetchError, Http
from monitor.models import Media
from monitor.sources.base import FetchContext
from monitor.sources.sitemap import SitemapSource, gunzip, newest, parse_sitemap
from monitor.xmlsafe import UnsafeXML
from tests.conftest import REALDATA

BASE = "https://news.example.org"
SM = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS = "http://www.google.com/schemas/sitemap-news/0.9"


def urlset(*entries: tuple[str, str]) -> bytes:
    """A Google News sitemap with one <url> per (path, ISO date)."""
    urls = "".join(
        f"<url><loc>{BASE}{path}</loc><news:news><news:publication><news:name>Example</news:name>"
        f"<news:language>en</news:language></news:publication>"
        f"<news:publication_date>{date}</news:publication_date>"
        f"<news:title>Story {path}</news:title></news:news></url>"
        for path, date in entries
    )
    return f'<urlset xmlns="{SM}" xmlns:news="{NEWS}">{urls}</urlset>'.encode()


def index(*children: tuple[str, str | None]) -> bytes:
    items = "".join(
        f"<sitemap><loc>{BASE}{path}</loc>"
        + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
        + "</sitemap>"
        for path, lastmod in children
    )
    return f'<sitemapindex xmlns="{SM}">{items}</sitemapindex>'.encode()


# --- real captures -------------------------------------------------------------------------

EXPECTED = {  # file → (children, posts)
    "edge-sitemap-wrong-namespace-whitespace-loc.xml": (0, 2),
    "edge-sitemapindex-cdata-loc.xml": (2, 0),
    "google-news-sitemap-spec-example.xml": (0, 2),
    "hebdenbridgetimes-articles-sitemap-video-image-mobile-2015.xml": (0, 74),
    "sitemaps-org-urlset.xml": (0, 84),
    "sitemaps-org-urlset.xml.gz": (0, 84),
    "wordpress-com-google-news-sitemap-2017.xml": (0, 3),
}
SITEMAP_FILES = sorted((REALDATA / "sitemaps").glob("*")) if REALDATA.is_dir() else []


@pytest.mark.parametrize("path", SITEMAP_FILES, ids=[p.name for p in SITEMAP_FILES])
def test_every_realdata_sitemap_parses(path: Path):
    page = parse_sitemap(path.read_bytes(), "https://www.example.com/sitemap.xml")
    assert (len(page.children), len(page.posts)) == EXPECTED[path.name]
    for post in page.posts:
        assert post.url == post.external_id
        assert post.url.startswith(("http://", "https://")) and post.url == post.url.strip()
        assert post.kind == "article"


def test_every_realdata_sitemap_has_an_expectation(realdata: Path):
    assert {p.name for p in (realdata / "sitemaps").glob("*")} == set(EXPECTED)


def test_wrong_namespace_and_whitespace_around_loc_are_tolerated(realdata: Path):
    body = (realdata / "sitemaps/edge-sitemap-wrong-namespace-whitespace-loc.xml").read_bytes()
    page = parse_sitemap(body, "https://www.example.com/sitemap.xml")
    assert [p.url for p in page.posts] == ["http://www.example.com/1", "http://www.example.com/2"]


def test_sitemap_index_lists_children_with_cdata_locs_and_utc_lastmods(realdata: Path):
    body = (realdata / "sitemaps/edge-sitemapindex-cdata-loc.xml").read_bytes()
    page = parse_sitemap(body, "https://www.example.com/sitemap.xml")
    assert page.children == [
        ("http://www.example.com/sitemap1.xml.gz", "2004-10-01T18:23:17Z"),
        ("http://www.example.com/sitemap2.xml.gz", "2005-01-01T00:00:00Z"),
    ]
    assert page.posts == []


def test_google_news_entries_have_title_date_and_language(realdata: Path):
    body = (realdata / "sitemaps/google-news-sitemap-spec-example.xml").read_bytes()
    first, second = parse_sitemap(body, "https://www.example.org/news.xml").posts
    assert first.external_id == first.url == "http://www.example.org/business/article55.html"
    assert first.title == "Companies A, B in Merger Talks"
    assert first.published_at == "2008-12-23T00:00:00Z"
    assert (first.lang, first.kind) == ("en", "article")
    assert first.extra == {
        "publication": "The Example Times",
        "keywords": "business, merger, acquisition, A, B",
    }
    assert second.extra == {}  # an empty <news:name> is no publication


def test_wordpress_news_sitemap_dates_are_utc(realdata: Path):
    body = (realdata / "sitemaps/wordpress-com-google-news-sitemap-2017.xml").read_bytes()
    posts = parse_sitemap(body, "https://x.wordpress.com/news-sitemap.xml").posts
    assert [p.published_at for p in posts] == [
        "2017-04-25T10:00:36Z",
        "2017-04-24T10:00:33Z",
        "2017-04-24T10:00:10Z",
    ]


def test_plain_urlset_entries_have_no_title_and_lastmod_as_date(realdata: Path):
    body = (realdata / "sitemaps/sitemaps-org-urlset.xml").read_bytes()
    post = parse_sitemap(body, "https://www.sitemaps.org/sitemap.xml").posts[0]
    assert (post.external_id, post.title) == ("https://www.sitemaps.org/", None)
    assert post.published_at == "2016-11-21T00:00:00Z"


def test_gzipped_sitemap_reads_like_the_plain_one(realdata: Path):
    plain = parse_sitemap((realdata / "sitemaps/sitemaps-org-urlset.xml").read_bytes(), BASE)
    zipped = parse_sitemap((realdata / "sitemaps/sitemaps-org-urlset.xml.gz").read_bytes(), BASE)
    assert zipped == plain


def test_image_and_video_extensions_are_kept_as_media(realdata: Path):
    body = (
        realdata / "sitemaps/hebdenbridgetimes-articles-sitemap-video-image-mobile-2015.xml"
    ).read_bytes()
    post = parse_sitemap(body, BASE).posts[0]
    assert post.title == "VIDEO - Tour de Yorkshire in Calderdale"  # video:title
    assert post.published_at == "2015-05-03T17:51:50Z"  # lastmod, +01:00
    # video:description is escaped HTML with a comment in it: text, not markup.
    assert (
        post.text
        == "Thousands of people turned out to watch the Tour de Yorkshire arrive in Calderdale."
    )
    img = (
        "http://www.hebdenbridgetimes.co.uk/webimage/1.7242578!/image/417104257.jpg_gen/derivatives"
    )
    assert post.media[0] == Media(
        url=f"{img}/landscape_595/417104257.jpg", medium="image", role="image"
    )
    assert post.media[1].medium == "video" and post.media[1].url.startswith(
        "http://c.brightcove.com/"
    )
    assert post.media[2] == Media(
        url=f"{img}/box_100/417104257.jpg", medium="image", role="thumbnail"
    )
    second = parse_sitemap(body, BASE).posts[1]
    assert second.title == "Missing man Stephen Ellis"  # image:title when there is no video


# --- edge cases ----------------------------------------------------------------------------


def test_gzip_bomb_stops_at_the_cap():
    bomb = gzip.compress(b"\0" * 2_000_000)
    with pytest.raises(ParseError, match="larger than"):
        gunzip(bomb, limit=1_000_000)
    assert len(gunzip(bomb, limit=2_000_000)) == 2_000_000


def test_default_cap_refuses_a_sitemap_over_50mb_unzipped():
    bomb = gzip.compress(b"<urlset>" + b" " * 51_000_000, compresslevel=1)
    with pytest.raises(ParseError, match="50 MB"):
        parse_sitemap(bomb, BASE)


def test_truncated_and_corrupt_gzip_are_parse_errors():
    good = gzip.compress(urlset(("/a", "2025-01-01")))
    with pytest.raises(ParseError, match="truncated"):
        parse_sitemap(good[: len(good) // 2], BASE)
    with pytest.raises(ParseError, match="broken gzip"):
        parse_sitemap(good[:10] + b"\xff" * 40, BASE)


def test_concatenated_gzip_members_are_one_file():
    body = urlset(("/a", "2025-01-01"))
    half = len(body) // 2
    assert gunzip(gzip.compress(body[:half]) + gzip.compress(body[half:])) == body


def test_relative_loc_is_resolved_against_the_sitemap_url():
    body = f'<urlset xmlns="{SM}"><url><loc>/a/1</loc></url><url><loc> </loc></url></urlset>'
    (post,) = parse_sitemap(body.encode(), f"{BASE}/sitemaps/s.xml").posts
    assert post.url == f"{BASE}/a/1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>Not found</body></html>", "root element is <html>"),
        (b'<rss version="2.0"><channel/></rss>', 'use type = "feed"'),
        (b"<urlset><url><loc>x", "not well-formed"),
        (b"User-agent: *\nDisallow: /", "not well-formed"),
    ],
)
def test_what_is_not_a_sitemap_is_a_parse_error(body: bytes, message: str):
    with pytest.raises(ParseError, match=message):
        parse_sitemap(body, BASE)


def test_entity_declarations_in_a_sitemap_are_refused():
    body = b'<!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset><url><loc>&x;</loc></url></urlset>'
    with pytest.raises(UnsafeXML):
        parse_sitemap(body, BASE)
    with pytest.raises(UnsafeXML):
        parse_sitemap(gzip.compress(body), BASE)


def test_newest_children_come_first_and_undated_ones_last_in_document_order():
    children = [
        ("a", None),
        ("b", "2025-01-02T00:00:00Z"),
        ("c", None),
        ("d", "2025-03-01T00:00:00Z"),
    ]
    assert [c[0] for c in newest(children)] == ["d", "b", "a", "c"]


def test_validate():
    assert SitemapSource(id="s", type="sitemap", url=f"{BASE}/s.xml").validate() == []
    assert SitemapSource(id="s", type="sitemap", url="s.xml", limit=0).validate() == [
        "url: must be an http:// or https:// URL",
        "limit: must be at least 1",
    ]


# --- collect() -----------------------------------------------------------------------------


async def collect(src: SitemapSource, state: dict | None = None) -> tuple:
    http = Http()
    try:
        ctx = FetchContext(http=http, state=state if state is not None else {}, timeout=5)
        return await src.collect(ctx), ctx
    finally:
        await http.aclose()


async def test_index_follows_the_three_newest_children_and_keeps_the_newest_entries():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml", limit=4)
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{BASE}/sitemap.xml").respond(
            200,
            content=index(
                ("/2025-01.xml", "2025-01-31T00:00:00Z"),
                ("/2025-03.xml", "2025-03-31T00:00:00Z"),
                ("/2025-02.xml", "2025-02-28T00:00:00Z"),
                ("/2024-12.xml", "2024-12-31T00:00:00Z"),
            ),
        )
        mock.get(f"{BASE}/2025-03.xml").respond(
            200, content=urlset(("/m1", "2025-03-01T10:00:00Z"), ("/m2", "2025-03-02T10:00:00Z"))
        )
        mock.get(f"{BASE}/2025-02.xml").respond(
            200,
            content=gzip.compress(urlset(("/f1", "2025-02-01"), ("/m1", "2025-03-01T10:00:00Z"))),
        )
        mock.get(f"{BASE}/2025-01.xml").respond(200, content=urlset(("/j1", "2025-01-05")))
        oldest = mock.get(f"{BASE}/2024-12.xml").respond(200, content=urlset(("/d1", "2024-12-05")))
        result, ctx = await collect(src)
    assert not oldest.called
    assert [p.url for p in result.posts] == [
        f"{BASE}/m2",
        f"{BASE}/m1",  # listed twice, kept once
        f"{BASE}/f1",
        f"{BASE}/j1",
    ]
    assert result.http_status == 200 and not result.not_modified
    assert set(ctx.state.get("validators", {})) <= {
        f"{BASE}/sitemap.xml",
        *(f"{BASE}/2025-0{m}.xml" for m in (1, 2, 3)),
    }
    assert [c[0] for c in ctx.state["children"]] == [
        f"{BASE}/2025-03.xml",
        f"{BASE}/2025-02.xml",
        f"{BASE}/2025-01.xml",
    ]


async def test_limit_keeps_only_the_newest_entries_of_a_urlset():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/news.xml", limit=2)
    with respx.mock:
        respx.get(f"{BASE}/news.xml").respond(
            200,
            content=urlset(("/old", "2025-01-01"), ("/new", "2025-03-01"), ("/mid", "2025-02-01")),
        )
        result, _ = await collect(src)
    assert [p.url for p in result.posts] == [f"{BASE}/new", f"{BASE}/mid"]


async def test_unchanged_urlset_is_not_modified():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/news.xml")
    sent: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("if-none-match"))
        return httpx.Response(304)

    with respx.mock:
        respx.get(f"{BASE}/news.xml").mock(side_effect=answer)
        state = {"validators": {f"{BASE}/news.xml": {"etag": '"v7"'}}}
        result, _ = await collect(src, state)
    assert sent == ['"v7"']
    assert (result.posts, result.http_status, result.not_modified) == ([], 304, True)


async def test_unchanged_index_still_checks_the_children_it_listed():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    state = {
        "validators": {f"{BASE}/sitemap.xml": {"etag": '"idx"'}},
        "children": [[f"{BASE}/news.xml", "2025-03-01T00:00:00Z"]],
    }
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(304)
        respx.get(f"{BASE}/news.xml").respond(200, content=urlset(("/fresh", "2025-03-05")))
        result, _ = await collect(src, state)
    assert [p.url for p in result.posts] == [f"{BASE}/fresh"]
    assert not result.not_modified


async def test_index_of_indexes_is_followed_one_level_down():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(200, content=index(("/2025.xml", None)))
        respx.get(f"{BASE}/2025.xml").respond(200, content=index(("/2025-03.xml", None)))
        respx.get(f"{BASE}/2025-03.xml").respond(200, content=urlset(("/a", "2025-03-01")))
        result, _ = await collect(src)
    assert [p.url for p in result.posts] == [f"{BASE}/a"]


async def test_validators_of_children_no_longer_listed_are_forgotten():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    state = {"validators": {f"{BASE}/2024-01.xml": {"etag": '"old"'}}}
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(
            200, content=index(("/2025-03.xml", None)), headers={"etag": '"i"'}
        )
        respx.get(f"{BASE}/2025-03.xml").respond(
            200, content=urlset(("/a", "2025-03-01")), headers={"etag": '"c"'}
        )
        await collect(src, state)
    assert state["validators"] == {
        f"{BASE}/sitemap.xml": {"etag": '"i"'},
        f"{BASE}/2025-03.xml": {"etag": '"c"'},
    }


async def test_a_failing_child_is_logged_and_the_others_kept():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(
            200, content=index(("/a.xml", "2025-03-02"), ("/b.xml", "2025-03-01"))
        )
        respx.get(f"{BASE}/a.xml").respond(500)
        respx.get(f"{BASE}/b.xml").respond(200, content=urlset(("/b1", "2025-03-01")))
        result, ctx = await collect(src)
    assert [p.url for p in result.posts] == [f"{BASE}/b1"]
    assert len(ctx.log) == 1 and "a.xml" in ctx.log[0] and "500" in ctx.log[0]


async def test_when_every_child_fails_the_source_fails():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(200, content=index(("/a.xml", None)))
        respx.get(f"{BASE}/a.xml").respond(404)
        with pytest.raises(FetchError, match="404"):
            await collect(src)


# --- the pages of a plain sitemap ------------------------------------------------------------


def plain(*entries: tuple[str, str]) -> bytes:
    """A plain sitemap: links and lastmods, no titles."""
    urls = "".join(f"<url><loc>{BASE}{p}</loc><lastmod>{d}</lastmod></url>" for p, d in entries)
    return f'<urlset xmlns="{SM}">{urls}</urlset>'.encode()


def article(title: str, published: str | None = None) -> bytes:
    date = f'<meta property="article:published_time" content="{published}">' if published else ""
    return (
        f'<!doctype html><html lang="fr"><head><title>{title} | Élysée</title>'
        f'<meta property="og:title" content="{title}">{date}'
        '<meta name="description" content="Le président a reçu les dirigeants européens.">'
        '<meta property="og:image" content="/img/a.jpg"></head><body><h1>x</h1></body></html>'
    ).encode()


async def test_a_plain_sitemaps_new_entries_take_their_pages_title_summary_and_date():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    state: dict = {}
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(
            200, content=plain(("/a", "2026-11-19"), ("/b", "2026-11-18"))
        )
        a = respx.get(f"{BASE}/a").respond(
            200,
            content=article("Soutien à l'Ukraine : troupes au sol", "2026-11-19T10:00:00+01:00"),
        )
        b = respx.get(f"{BASE}/b").respond(200, content=article("Conseil de défense"))
        result, ctx = await collect(src, state)
        by_url = {p.url: p for p in result.posts}
        assert by_url[f"{BASE}/a"].title == "Soutien à l'Ukraine : troupes au sol"
        assert by_url[f"{BASE}/a"].published_at == "2026-11-19T09:00:00Z"  # the page's own time
        assert by_url[f"{BASE}/b"].published_at == "2026-11-18T00:00:00Z"  # else the lastmod
        assert by_url[f"{BASE}/b"].text == "Le président a reçu les dirigeants européens."
        assert by_url[f"{BASE}/b"].lang == "fr"
        assert by_url[f"{BASE}/b"].media[0].url == f"{BASE}/img/a.jpg"
        # Next pass: the same entries are not read again, nor handed back bare (which would
        # replace their titles with nothing); a new one is read.
        respx.get(f"{BASE}/sitemap.xml").respond(
            200, content=plain(("/c", "2026-11-20"), ("/a", "2026-11-19"), ("/b", "2026-11-18"))
        )
        respx.get(f"{BASE}/c").respond(200, content=article("Entretien"))
        again, _ = await collect(src, state)
    assert [p.title for p in again.posts] == ["Entretien"]
    assert a.call_count == 1 and b.call_count == 1


async def test_a_page_that_cannot_be_read_leaves_its_entry_untitled_and_says_so():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(200, content=plain(("/gone", "2026-11-19")))
        respx.get(f"{BASE}/gone").respond(404)
        result, ctx = await collect(src)
    (post,) = result.posts
    assert post.url == f"{BASE}/gone" and post.title is None
    assert ctx.log == [f"could not read 1 of 1 new pages: {BASE}/gone: HTTP 404 Not Found"]


async def test_at_most_twenty_pages_are_read_in_one_pass_and_the_rest_wait():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml")
    entries = [(f"/p{i}", f"2026-11-{i + 1:02d}") for i in range(25)]
    state: dict = {}
    with respx.mock:
        respx.get(f"{BASE}/sitemap.xml").respond(200, content=plain(*entries))
        pages = respx.get(url__regex=rf"{BASE}/p\d+$").respond(200, content=article("A"))
        first, ctx = await collect(src, state)
        assert pages.call_count == 20 and len(first.posts) == 20
        assert ctx.log == ["5 new pages left for the next fetch"]
        second, _ = await collect(src, state)
    assert pages.call_count == 25 and len(second.posts) == 5


async def test_read_pages_false_keeps_a_plain_sitemaps_entries_as_they_are():
    src = SitemapSource(id="s", type="sitemap", url=f"{BASE}/sitemap.xml", read_pages=False)
    with respx.mock:  # any other request would fail the test
        respx.get(f"{BASE}/sitemap.xml").respond(200, content=plain(("/a", "2026-11-19")))
        result, _ = await collect(src)
    assert [(p.url, p.title) for p in result.posts] == [(f"{BASE}/a", None)]


@pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata is not present")
def test_every_real_article_page_gives_a_title_and_most_a_date():
    from monitor.sources.article import read_article_head

    heads = {
        p.name: read_article_head(p.read_bytes(), "https://example.org/")
        for p in sorted((REALDATA / "html").glob("*.html"))
    }
    assert heads and all(h.title for h in heads.values())
    assert (
        heads["bbc-news-article-2026.html"].title == "What is Nato and which countries are in it?"
    )
    # JSON-LD's datePublished, where the page has no meta tag for it (the BBC explainer was
    # first published in 2012; the page shows only its 2026 update).
    assert heads["bbc-news-article-2026.html"].published_at == "2012-05-10T14:29:05Z"
    assert heads["ukrainska-pravda-article-2026-rus.html"].published_at == "2026-01-08T15:46:00Z"
    assert sum(h.published_at is not None for h in heads.values()) >= len(heads) // 2
