"""The `page` source: listing pages read with CSS selectors, real captures and written fixtures."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx
import pytest
import respx

from monitor.charset import decode_html
from monitor.errors import ParseError
from monitor.http import Http
from monitor.sources.base import FetchContext
from monitor.sources.page import PageSource, parse_human_date, parse_page
from tests.conftest import real_bytes

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata"
HTML = REALDATA / "html"
FIXTURES = REPO / "fixtures" / "pages"


def page(url: str = "https://example.org/news/", **selectors: str) -> PageSource:
    return PageSource(id="test", type="page", url=url, **selectors)


def real(name: str) -> bytes:
    return real_bytes(HTML / name)


# --- real captures ------------------------------------------------------------------------


def test_anthropic_newsroom_gives_titled_dated_posts_with_absolute_links():
    cfg = page(
        "https://www.anthropic.com/news",
        item='a[href^="/news/"]',
        title='h2, h4, [class*="__title"]',
        date="time",
        summary="p",
    )
    posts = parse_page(real("anthropic-newsroom-listing-2026.html"), cfg.url, cfg)

    # 13 cards, two of which repeat a featured story further down the list.
    assert len(posts) == 11
    assert all(p.url.startswith("https://www.anthropic.com/news/") for p in posts)
    assert all(p.title and p.published_at for p in posts)
    assert len({p.external_id for p in posts}) == len(posts)
    first = posts[0]
    assert first.url == "https://www.anthropic.com/news/claude-opus-4-7"
    assert first.title == "Introducing Claude Opus 4.7"
    assert first.published_at == "2026-04-16T00:00:00Z"
    assert first.text.startswith("Our latest Opus model")
    assert first.kind == "article"
    assert first.lang == "en"
    spacex = next(p for p in posts if p.url.endswith("/higher-limits-spacex"))
    assert spacex.published_at == "2026-05-06T00:00:00Z"


def test_cnn_homepage_bullets_resolve_against_the_page_url():
    cfg = page("http://edition.cnn.com/", item="ul.cnn_bulletbin li")
    posts = parse_page(real("cnn-international-homepage-listing-2014.html"), cfg.url, cfg)

    assert len(posts) > 100
    assert all(p.title for p in posts)
    assert all(p.url.startswith("http://") for p in posts)
    crash = "http://edition.cnn.com/2014/07/24/world/europe/ukraine-malaysia-airlines-crash/index.html?hpt=hp_t2"
    assert any(p.url == crash and p.title == "More remains to arrive in Netherlands" for p in posts)
    # Off-site links stay as they are written.
    assert any(p.url.startswith("http://ireport.cnn.com/") for p in posts)
    assert all(p.published_at is None for p in posts)


def test_cnn_video_nodes_take_title_from_a_sibling_link_and_keep_the_thumbnail():
    cfg = page(
        "http://edition.cnn.com/",
        item="div.cnn_mc2node",
        title="div.cnn_mtlplnimg ~ a",
        image="img",
    )
    posts = parse_page(real("cnn-international-homepage-listing-2014.html"), cfg.url, cfg)

    israel = next(p for p in posts if "mideast-israel-endgame" in p.url)
    assert israel.title == "What Israel wants from incursion"
    (thumb,) = israel.media
    assert thumb.role == "thumbnail" and thumb.medium == "image"
    assert thumb.url.endswith("130721142304-benjamin-netanyahu-video-tease.jpg")


@pytest.mark.parametrize("item", ["article", "a"])
def test_every_real_html_page_gives_posts_or_a_clean_error_saying_the_site_changed(item):
    if not HTML.exists():
        pytest.skip(f"realdata not present: {HTML}")
    cfg = page(item=item, date="time", image="img", summary="p")
    files = sorted(HTML.glob("*.html"))
    assert files
    for path in files:
        try:
            posts = parse_page(path.read_bytes(), "https://example.org/news/", cfg)
        except ParseError as e:
            assert re.fullmatch(
                f"item selector '{item}' (matched nothing on the page|matched \\d+ elements? but "
                "none has a link and a title or summary) — has the site changed\\?",
                str(e),
            ), (path.name, str(e))
            continue
        assert posts, path.name
        for post in posts:
            assert post.url.startswith(("http://", "https://")), path.name
            assert "#" not in post.external_id, path.name
            assert post.title or post.text, (path.name, post.url)
            assert "\ufffd" not in (post.title or "") + (post.text or ""), path.name
    if item == "a":
        # Every captured page has links, so none may fall back to the error.
        assert all(parse_page(p.read_bytes(), "https://example.org/", cfg) for p in files)


def test_turkish_windows_1254_page_decodes_from_its_meta_charset():
    cfg = page("https://www.muhasebetr.com/", item="a")
    posts = parse_page(real("muhasebetr-turkish-article-windows-1254.html"), cfg.url, cfg)
    titles = {p.title for p in posts}

    assert "Bize Ulaşın" in titles
    assert "Dış Ticaret Mevzuatı" in titles
    assert "İş Kanunu" in titles
    assert not any("\ufffd" in (t or "") for t in titles)


def test_iso_8859_1_page_decodes_like_a_browser_including_the_euro_sign():
    cfg = page("https://winfuture.de/", item="a")
    posts = parse_page(real("winfuture-de-article-iso8859-1.html"), cfg.url, cfg)
    titles = [p.title or "" for p in posts]

    assert any(t.startswith("Großes PS5-Pro-Upgrade") for t in titles)
    # 0x80 is the euro in windows-1252, which browsers read for an iso-8859-1 label.
    assert any(t.endswith("892,45 €") for t in titles)
    assert posts[0].lang == "de"


# --- decoding -------------------------------------------------------------------------------


def test_http_charset_wins_over_meta_charset():
    body = '<meta charset="utf-8"><a href="/x">Ağustos</a>'.encode("cp1254")
    assert "Ağustos" in decode_html(body, "text/html; charset=windows-1254")
    assert "Ağustos" not in decode_html(body, "text/html")


def test_byte_order_mark_wins_over_every_declaration():
    body = "\ufeff<meta charset=windows-1254><p>Kasım ünlü</p>".encode("utf-8")
    assert decode_html(body, "text/html; charset=iso-8859-1").startswith("<meta")
    assert "Kasım ünlü" in decode_html(body, "text/html; charset=iso-8859-1")


def test_undeclared_bytes_are_utf8_when_valid_else_windows_1252():
    assert decode_html("Élysée".encode()) == "Élysée"
    assert decode_html("Élysée “x”".encode("cp1252")) == "Élysée “x”"


def test_an_undeclared_cyrillic_page_is_read_in_the_code_page_its_words_fit():
    html = "<ul><li><a href='/n/1'>Песков: Кремль не видит оснований для переговоров</a></ul>"
    assert decode_html(html.encode("cp1251")) == html
    assert decode_html(html.encode("koi8-r")) == html


# --- written fixtures -----------------------------------------------------------------------


ELYSEE = dict(
    item=".newsBlock",
    link=".newsBlock-title a",
    title=".newsBlock-title",
    date=".newsBlock-date",
    image="img",
)


def test_elysee_listing_reads_french_dates_and_lazy_images():
    url = "https://www.elysee.fr/toutes-les-actualites"
    cfg = page(url, **ELYSEE)
    posts = parse_page((FIXTURES / "elysee-toutes-les-actualites.html").read_bytes(), url, cfg)

    assert [p.published_at for p in posts] == [
        "2026-11-24T00:00:00Z",
        "2026-11-19T00:00:00Z",
        "2026-11-11T00:00:00Z",
        "2026-08-01T00:00:00Z",  # "1er août 2026"
        "2026-02-03T00:00:00Z",  # "3 février 2026"
    ]
    first = posts[0]
    assert first.url == (
        "https://www.elysee.fr/emmanuel-macron/2026/11/24/"
        "declaration-du-president-de-la-republique-sur-lukraine"
    )
    assert first.title == (
        "Déclaration du Président de la République sur l’Ukraine et l’envoi de troupes au sol"
    )
    assert first.text is None  # the listing has no summary, only a category
    assert first.lang == "fr"
    assert first.media[0].url == (
        "https://www.elysee.fr/images/default/0001/18/"
        "8c2d1f0e9d7a4b3c2a1b0c9d8e7f6a5b4c3d2e1f.jpeg?w=600&h=338"
    )
    assert posts[3].external_id.endswith("entretien-telephonique-avec-le-president-ukrainien")
    assert posts[4].media == ()


def test_example_config_elysee_source_reads_the_elysee_fixture():
    raw = tomllib.loads((REPO / "config" / "monitor.toml").read_text(encoding="utf-8"))
    table = dict(raw["sources"]["elysee"])
    assert table["type"] == "page"
    cfg = PageSource(id="elysee", **table)
    assert cfg.validate() == []
    body = (FIXTURES / "elysee-toutes-les-actualites.html").read_bytes()
    posts = parse_page(body, cfg.url, cfg)
    assert len(posts) == 5
    assert all(p.title and p.published_at and p.url.startswith(cfg.url[:21]) for p in posts)


def test_nato_newsroom_resolves_page_relative_links_and_drops_repeats():
    url = "https://www.nato.int/cps/en/natohq/news.htm"
    cfg = page(
        url,
        item=".event-list-item",
        title=".event-title",
        date=".event-date",
        summary=".event-summary",
        image="img",
    )
    posts = parse_page((FIXTURES / "nato-newsroom.html").read_bytes(), url, cfg)

    assert [p.url for p in posts] == [
        "https://www.nato.int/cps/en/natohq/news_231450.htm?selectedLocale=en",
        "https://www.nato.int/cps/en/natohq/opinions_231402.htm?selectedLocale=en",
        "https://www.nato.int/cps/en/natohq/official_texts_231377.htm?selectedLocale=en",
        "https://www.nato.int/cps/en/natohq/news_231311.htm?selectedLocale=en",
    ]
    assert [p.published_at for p in posts] == [
        "2026-11-24T00:00:00Z",
        "2026-11-21T00:00:00Z",
        "2026-11-18T00:00:00Z",
        "2026-09-09T00:00:00Z",
    ]
    assert posts[0].title == "Secretary General: Allies stand ready to support Ukraine's security"
    assert posts[0].media[0].url.startswith("https://www.nato.int/nato_static_fl2014/")
    assert posts[2].media == ()
    assert posts[3].text == "Allied troops trained together in northern Poland."


# --- selectors and links --------------------------------------------------------------------


def test_base_href_decides_where_relative_links_point():
    body = b"""<html><head><base href="/archive/2026/"></head><body>
      <article><a href="story-1.html#top">One</a></article>
      <article><a href="https://other.example/two">Two</a></article></body></html>"""
    posts = parse_page(body, "https://example.org/news/", page(item="article"))
    assert [p.url for p in posts] == [
        "https://example.org/archive/2026/story-1.html",
        "https://other.example/two",
    ]


def test_title_defaults_to_the_link_text_and_an_a_item_is_its_own_link():
    body = b'<ul><li><a class="s" href="/a"><b>N</b>ATO <i>troops</i>\n</a></li></ul>'
    (post,) = parse_page(body, "https://example.org/", page(item="a.s"))
    assert post.url == "https://example.org/a"
    assert post.title == "NATO troops"


def test_link_selector_on_a_heading_uses_the_link_inside_it():
    body = b'<div class="c"><a href="/tag">Tag</a><h3><a href="/story">Story</a></h3></div>'
    (post,) = parse_page(body, "https://example.org/", page(item="div.c", link="h3"))
    assert post.url == "https://example.org/story"
    assert post.title == "Story"


def test_items_without_a_usable_link_are_skipped():
    body = b"""<div class="i"><span>no link</span></div>
      <div class="i"><a href="javascript:void(0)">js</a></div>
      <div class="i"><a href="mailto:press@example.org">mail</a></div>
      <div class="i"><a href="/ok">ok</a></div>"""
    posts = parse_page(body, "https://example.org/", page(item="div.i"))
    assert [p.title for p in posts] == ["ok"]


def test_item_selector_matching_nothing_is_a_parse_error_naming_the_selector():
    with pytest.raises(ParseError) as e:
        parse_page(b"<p>redesigned</p>", "https://example.org/", page(item="div.newsBlock"))
    assert str(e.value) == (
        "item selector 'div.newsBlock' matched nothing on the page — has the site changed?"
    )


def test_author_and_datetime_attribute_are_read():
    body = b"""<article><a href="/s">S</a><span class="by">Jane Roe</span>
      <time datetime="2026-11-24T10:05:00+01:00">yesterday</time></article>"""
    cfg = page(item="article", author=".by", date="time")
    (post,) = parse_page(body, "https://example.org/", cfg)
    assert post.author == "Jane Roe"
    assert post.published_at == "2026-11-24T09:05:00Z"


def test_validate_reports_each_invalid_selector_by_key():
    cfg = page(item="div[", title="h2,", date="time")
    problems = cfg.validate()
    assert problems == ["item: invalid CSS selector 'div['", "title: invalid CSS selector 'h2,'"]
    assert page(item="article", title="h2, h3", image="img[data-src]").validate() == []
    assert page(url="ftp://example.org/", item="a").validate() == [
        "url: must be an http(s) URL, got 'ftp://example.org/'"
    ]


# --- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24 November 2026", "2026-11-24T00:00:00Z"),
        ("November 24, 2026 10:05", "2026-11-24T10:05:00Z"),
        ("Nov. 24, 2026, 3:05 p.m.", "2026-11-24T15:05:00Z"),
        ("24 Nov. 2026", "2026-11-24T00:00:00Z"),
        ("24.11.2026", "2026-11-24T00:00:00Z"),
        ("11/24/2026", "2026-11-24T00:00:00Z"),
        ("2026/11/24", "2026-11-24T00:00:00Z"),
        ("Publié le 1er décembre 2026 à 18h30", "2026-12-01T18:30:00Z"),
        ("24 AOÛT 2026", "2026-08-24T00:00:00Z"),
        ("24 ноября 2026 года, 15:30", "2026-11-24T15:30:00Z"),
        ("12 мая 2026", "2026-05-12T00:00:00Z"),
        ("24 Kasım 2026 Pazartesi", "2026-11-24T00:00:00Z"),
        ("24 KASIM 2026", "2026-11-24T00:00:00Z"),
        ("24. März 2026, 10:05 Uhr", "2026-03-24T10:05:00Z"),
        ("Mardi 3 mars 2026", "2026-03-03T00:00:00Z"),
        ("3 min read · 24 Nov 2026", "2026-11-24T00:00:00Z"),
        ("2026-11-24T10:05:00+03:00", "2026-11-24T07:05:00Z"),
        ("Tue, 24 Nov 2026 10:05:00 GMT", "2026-11-24T10:05:00Z"),
        ("3 грудня 2026 року - 14:05", "2026-12-03T14:05:00Z"),
        ("12 листопада 2026", "2026-11-12T00:00:00Z"),
        ("24 de noviembre de 2026", "2026-11-24T00:00:00Z"),
        ("24 novembre 2026 alle 10:05", "2026-11-24T10:05:00Z"),
        ("24 de março de 2026", "2026-03-24T00:00:00Z"),
        ("24 listopada 2026", "2026-11-24T00:00:00Z"),
        ("24 mei 2026", "2026-05-24T00:00:00Z"),
        ("24 نوفمبر 2026", "2026-11-24T00:00:00Z"),
        ("الثلاثاء 24 تشرين الثاني 2026", "2026-11-24T00:00:00Z"),
        ("24 كانون الأول 2026", "2026-12-24T00:00:00Z"),
        ("٢٤ أيار ٢٠٢٦", "2026-05-24T00:00:00Z"),
        ("Posted 3 days ago, 2026", None),
        ("2 hours ago", None),
        ("November 2026", None),
        ("31.02.2026", None),
        ("", None),
    ],
)
def test_human_dates_in_several_languages(text, expected):
    assert parse_human_date(text) == expected


# --- collect ----------------------------------------------------------------------------------


async def test_collect_fetches_parses_and_then_honours_not_modified():
    url = "https://www.elysee.fr/toutes-les-actualites"
    cfg = page(url, **ELYSEE)
    body = (FIXTURES / "elysee-toutes-les-actualites.html").read_bytes()
    state: dict = {}
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(url).mock(
            side_effect=[
                httpx.Response(
                    200, content=body, headers={"content-type": "text/html", "etag": '"v1"'}
                ),
                httpx.Response(304),
            ]
        )
        async with Http() as http:
            ctx = FetchContext(http=http, state=state, timeout=5.0)
            first = await cfg.collect(ctx)
            second = await cfg.collect(ctx)

    assert first.http_status == 200 and not first.not_modified
    assert len(first.posts) == 5
    assert second.posts == [] and second.not_modified and second.http_status == 304
    assert route.calls[1].request.headers["if-none-match"] == '"v1"'


async def test_collect_resolves_links_against_the_url_after_redirects():
    start = "https://elysee.example/actualites"
    final = "https://www.elysee.fr/toutes-les-actualites/"
    body = b'<div class="newsBlock"><h2 class="newsBlock-title"><a href="page-2">P</a></h2></div>'
    with respx.mock:
        respx.get(start).mock(return_value=httpx.Response(301, headers={"location": final}))
        respx.get(final).mock(return_value=httpx.Response(200, content=body))
        async with Http() as http:
            got = await page(start, **ELYSEE).collect(FetchContext(http, {}, 5.0))
    assert [p.url for p in got.posts] == ["https://www.elysee.fr/toutes-les-actualites/page-2"]


def test_a_link_without_text_is_titled_by_its_label_or_image_and_a_wordless_one_is_skipped():
    body = (
        b'<ul><li><a href="/a1" aria-label="Press point on Ukraine"><svg></svg></a></li>'
        b'<li><a href="/a2"><img src="t.jpg" alt="NATO ministers meet"></a></li>'
        b'<li><a href="/a3" title="Statement by the Secretary General"></a></li>'
        b'<li><a href="/share"><img src="icon.svg"></a></li></ul>'
    )
    posts = parse_page(body, "https://www.nato.int/news/", page(item="li"))
    assert [(p.url.rsplit("/", 1)[1], p.title) for p in posts] == [
        ("a1", "Press point on Ukraine"),
        ("a2", "NATO ministers meet"),
        ("a3", "Statement by the Secretary General"),
    ]


def test_items_without_any_story_in_them_say_the_site_changed():
    body = b'<div class="card"><span>Coming soon</span></div><div class="card"></div>'
    with pytest.raises(ParseError) as e:
        parse_page(body, "https://www.elysee.fr/", page(item="div.card"))
    assert str(e.value) == (
        "item selector 'div.card' matched 2 elements but none has a link and a title or "
        "summary — has the site changed?"
    )
