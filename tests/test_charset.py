"""Code pages: declared, undeclared and mis-declared documents read in the letters they were written in."""

from __future__ import annotations

import re
import unicodedata

import httpx
import pytest
import respx

from monitor.charset import decode_html, read_encoding, xml_in_utf8
from monitor.feeds.document import parse_feed, read_feed
from monitor.http import Http
from monitor.sources.base import FetchContext
from monitor.sources.feed import FeedSource
from monitor.sources.sitemap import parse_sitemap
from monitor.xmlsafe import parse_xml
from tests.charset_samples import Sample, samples
from tests.conftest import REALDATA

URL = "https://news.example.org/feed.xml"
SAMPLES = samples()
IDS = [s.label for s in SAMPLES]


def read(body: bytes, content_type: str | None = None) -> tuple[list[str], list[str]]:
    posts, notices = read_feed(body, URL, content_type)
    return [_letters(t) for p in posts for t in (p.title, p.text) if t], notices


def _letters(text: str) -> str:
    # Titles are one line with single spaces (an ideographic space included): compare so.
    return " ".join(unicodedata.normalize("NFC", text).split())


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_an_undeclared_legacy_feed_is_read_in_its_own_letters(sample: Sample):
    texts, notices = read(sample.rss())
    assert texts == [_letters(t) for t in sample.texts()] and notices == []


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_a_feed_declared_in_its_xml_declaration_or_by_http_is_read_as_declared(sample: Sample):
    want = [_letters(t) for t in sample.texts()]
    assert read(sample.rss(declare=sample.code_page)) == (want, [])
    http = f"application/rss+xml; charset={sample.code_page}"
    assert read(sample.rss(), http) == (want, [])


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_a_legacy_feed_declared_utf8_is_read_in_its_code_page_with_a_notice(sample: Sample):
    want = [_letters(t) for t in sample.texts()]
    texts, notices = read(sample.rss(declare="utf-8"))
    assert texts == want
    read_as = read_encoding(sample.rss()).encoding
    assert notices == [
        f"declared as utf-8 (its XML declaration), but the bytes are not: read as {read_as}"
    ]
    # The commonest server default says UTF-8 over a feed that names its own code page.
    texts, notices = read(sample.rss(declare=sample.code_page), "text/xml; charset=UTF-8")
    assert texts == want and len(notices) == 1 and "the HTTP header" in notices[0]


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_an_html_page_is_read_in_its_code_page_declared_or_not(sample: Sample):
    for page in (sample.html(), sample.html(meta=sample.code_page)):
        text = unicodedata.normalize("NFC", decode_html(page))
        assert all(t in text for t in sample.texts())


def test_a_server_default_latin1_over_a_feeds_own_windows_1251_yields_to_the_feed():
    ru = next(s for s in SAMPLES if s.label == "ru-cp1251")
    texts, notices = read(ru.rss(declare="windows-1251"), "text/xml; charset=ISO-8859-1")
    assert texts == ru.texts()
    assert notices == [
        "declared as ISO-8859-1 (the HTTP header), but the bytes are not: read as cp1251"
    ]


def test_a_utf8_feed_that_declares_a_legacy_code_page_is_read_as_utf8():
    body = '<?xml version="1.0" encoding="windows-1251"?><rss><channel><item>'
    body += "<title>Песков: Кремль не видит оснований</title></item></channel></rss>"
    texts, notices = read(body.encode())
    assert texts == ["Песков: Кремль не видит оснований"]
    assert notices == [
        "declared as windows-1251 (its XML declaration), but the bytes are not: read as utf-8"
    ]


def _with_one_bad_byte(text: str) -> bytes:
    body = f'<?xml version="1.0" encoding="utf-8"?><rss><channel><item><title>{text}</title>'
    body += "<description>Генсек НАТО прибыл в Киев. Переговоры продолжатся.</description>"
    body += "<link>https://news.example.org/1</link></item></channel></rss>"
    return body.encode().replace("прибыл".encode(), b"\xff" + "прибыл".encode())


def test_one_bad_byte_in_a_utf8_feed_garbles_one_character_not_the_feed():
    texts, notices = read(_with_one_bad_byte("НАТО: саммит в Гааге"))
    assert texts == [
        "НАТО: саммит в Гааге",
        "Генсек НАТО \ufffdприбыл в Киев. Переговоры продолжатся.",
    ]
    assert notices == []  # the declaration was right: nothing to tell


def test_one_bad_byte_in_a_utf8_page_garbles_one_character():
    page = "<meta charset=utf-8><h1>Лавров рассмеялся</h1><p>Москва</p>".encode()
    assert decode_html(page.replace("Москва".encode(), b"\xc0" + "Москва".encode())) == (
        "<meta charset=utf-8><h1>Лавров рассмеялся</h1><p>\ufffdМосква</p>"
    )


def test_a_latin1_feed_declared_utf8_without_other_letters_reads_as_latin1():
    # "España" in ISO-8859-1 behind a UTF-8 declaration: no valid UTF-8 letter anywhere, so
    # the declaration is clearly wrong and the whole document is read again.
    body = b'<?xml version="1.0" encoding="utf-8"?><rss><channel><item><title>Espa\xf1a gana'
    body += b" el partido \x96 cr\xf3nica</title></item></channel></rss>"
    texts, notices = read(body)
    assert texts == ["España gana el partido – crónica"] and len(notices) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<rss>plain ASCII</rss>",
        "<rss>Лавров in UTF-8</rss>".encode(),
        b'<?xml version="1.0" encoding="utf-8"?><rss>UTF-8 \xe2\x80\x94 declared</rss>',
    ],
    ids=["ascii", "utf-8", "declared"],
)
def test_utf8_documents_take_the_fast_path_unchanged(body: bytes):
    xml, reading = xml_in_utf8(body)
    assert xml is body and reading.encoding == "utf-8" and reading.notice is None


def test_a_bom_outranks_every_label():
    body = b"\xef\xbb\xbf<rss><channel><item><title>caf\xc3\xa9</title></item></channel></rss>"
    assert read_encoding(body, "text/xml; charset=iso-8859-1").encoding == "utf-8"
    assert read(body, "text/xml; charset=iso-8859-1")[0] == ["café"]
    utf16 = "<rss><channel><item><title>Лавров</title></item></channel></rss>".encode("utf-16")
    assert read(utf16)[0] == ["Лавров"]


def test_an_undeclared_latin1_document_is_xml_and_not_malformed():
    root = parse_xml(b"<rss><channel><title>caf\xe9</title></channel></rss>")
    assert root.findtext("channel/title") == "café"


def test_an_undeclared_legacy_news_sitemap_keeps_its_titles():
    sitemap = (
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url>'
        "<loc>https://example.ru/news/1</loc><news:news><news:publication>"
        "<news:name>Пример</news:name><news:language>ru</news:language></news:publication>"
        "<news:publication_date>2026-11-24T10:00:00Z</news:publication_date>"
        "<news:title>Кремль ответил на слова Макрона о войсках</news:title>"
        "</news:news></url></urlset>"
    )
    page = parse_sitemap(sitemap.encode("koi8-r"), "https://example.ru/sitemap.xml")
    assert [p.title for p in page.posts] == ["Кремль ответил на слова Макрона о войсках"]


async def test_the_feed_source_reports_a_wrong_charset_label_as_a_notice():
    ja = next(s for s in SAMPLES if s.label == "ja-shift_jis")
    src = FeedSource(id="nhk", type="feed", url=URL)
    with respx.mock:
        respx.get(URL).mock(
            return_value=httpx.Response(
                200, content=ja.rss(), headers={"content-type": "text/xml; charset=utf-8"}
            )
        )
        http = Http()
        try:
            ctx = FetchContext(http=http, state={}, timeout=5)
            result = await src.collect(ctx)
        finally:
            await http.aclose()
    assert [_letters(p.title) for p in result.posts] == [_letters(t) for t, _ in ja.items]
    assert ctx.log == ["declared as utf-8 (the HTTP header), but the bytes are not: read as cp932"]


def _without_declaration(name: str) -> bytes:
    return re.sub(rb"^\s*<\?xml[^>]*\?>", b"", (REALDATA / name).read_bytes())


@pytest.mark.parametrize(
    "name",
    [
        "rss/liberal-gr-greek-iso8859-7.xml",
        "rss/muhasebetr-turkish-iso8859-9.xml",
        "rss/golem-de-rss1.0-rdf-iso8859-1.xml",
    ],
)
def test_real_feeds_read_the_same_with_their_declaration_taken_away(name: str):
    if not REALDATA.is_dir():
        pytest.skip("realdata not present")
    declared = parse_feed((REALDATA / name).read_bytes(), URL)
    guessed = parse_feed(_without_declaration(name), URL)
    assert declared and [p.title for p in guessed] == [p.title for p in declared]
    assert [p.text for p in guessed] == [p.text for p in declared]
