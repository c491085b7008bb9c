"""Every parser, for any input, returns a result or raises ParseError — nothing else escapes."""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.captions import parse_captions
from monitor.errors import ParseError
from monitor.sources.feed import parse_feed
from monitor.sources.page import PageSource, parse_page
from monitor.sources.sitemap import parse_sitemap
from monitor.xmlsafe import parse_xml

URL = "https://news.example/feed"
PAGE = PageSource(id="p", type="page", url=URL, item="article, li", link="a", title="h2",
                  date="time", summary="p", author=".by", image="img")  # fmt: skip

# Pieces real documents are made of, so that generated input reaches past the first check of
# each parser (a random byte string is rejected at byte 0 and tests little).
TOKENS = [
    '<?xml version="1.0"?>', '<?xml version="1.0" encoding="utf-16"?>',
    '<?xml version="1.0" encoding="iso-8859-1"?>', '<?xml version="1.0" encoding="utf-7"?>',
    "<rss version=\"2.0\">", "</rss>", "<channel>", "</channel>", "<item>", "</item>",
    "<title>", "</title>", "<link>", "</link>", "<guid>", "</guid>", "<pubDate>", "</pubDate>",
    "<description>", "</description>", '<feed xmlns="http://www.w3.org/2005/Atom">', "</feed>",
    "<entry>", "</entry>", '<link href="/a"/>', '<link rel="alternate" href="http://[::1"/>',
    "<updated>", "</updated>", '<content type="html">', "</content>",
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">', "</rdf:RDF>",
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">', "</urlset>",
    '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">', "</sitemapindex>",
    "<url>", "</url>", "<sitemap>", "</sitemap>", "<loc>", "</loc>", "<lastmod>", "</lastmod>",
    '<news:news xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">',
    "<news:title>", "</news:title>", "<news:publication_date>", "</news:publication_date>",
    '<media:content xmlns:media="http://search.yahoo.com/mrss/" url="v.mp4" medium="video"/>',
    '<enclosure url="http://x/a.mp3" length="-1" type="audio/mpeg"/>',
    "<![CDATA[", "]]>", "<!--", "-->", "&amp;", "&lt;", "&#0;", "&#x110000;", "&nbsp;", "&bogus;",
    "<!DOCTYPE rss>", '<!DOCTYPE x [<!ENTITY a "b">]>', "<!ENTITY", "&a;",
    "Mon, 32 Foo 2024 25:61:61 +9999", "2024-02-30T24:00:00Z", "9999-12-31", "0000-00-00",
    "https://news.example/a", "//x", "javascript:alert(1)", "http://[::1", "\x00", "\ufeff",
    "<html>", "<body>", "<article>", "</article>", "<li>", "<h2>", "</h2>", "<a href=\"/x\">",
    "</a>", "<time datetime=\"2024-13-45\">", "</time>", "<p>", "</p>", "<img src=\"\">",
    '<base href="javascript:">', '<meta charset="x-unknown">', '<html lang="\x00">',
    '{"version": "https://jsonfeed.org/version/1.1", "items": [', "]}", "{", "}", "[", "]",
    '{"id": 1, "url": null, "title": [], "date_published": 5, "content_html": {}}', ",",
    '"authors": [{"name": 1}]', '"attachments": [{"url": 3}]', "null", "true", "1e999",
    "Краткие новости", "日本語", "\u202e", "\ud7ff",
    "WEBVTT\n\n", "00:00:01.000 --> 00:00:02.000\n",
    "1\n00:00:01,000 --> 00:00:00,500\n", '<transcript><text start="1" dur="-2">', "</text>",
    '{"events": [{"tStartMs": 1e308, "segs": [{"utf8": 1}]}]}', "<tt><body><p begin=\"1h\">",
]  # fmt: skip
ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "koi8-r"]


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=12)), max_size=40))
    text = "".join(parts)
    how = draw(st.sampled_from(ENCODINGS + ["bom-utf-8", "raw"]))
    if how == "raw":
        return draw(st.binary(max_size=200)) + text.encode("utf-8", "surrogatepass")
    if how == "bom-utf-8":
        return codecs.BOM_UTF8 + text.encode("utf-8", "replace")
    return text.encode(how, "replace")


inputs = st.one_of(st.binary(max_size=400), documents())
PARSERS: dict[str, Callable[[bytes], Any]] = {
    "parse_feed": lambda b: parse_feed(b, URL),
    "parse_feed+content-type": lambda b: parse_feed(b, URL, "text/xml; charset=koi8-r"),
    "parse_sitemap": lambda b: parse_sitemap(b, URL),
    "parse_page": lambda b: parse_page(b, URL, PAGE),
    "parse_page+content-type": lambda b: parse_page(b, URL, PAGE, "text/html; charset=bogus"),
    "parse_xml": lambda b: parse_xml(b, base_url=URL),
    # Captions are the third XML path (srv1/srv3/TTML), besides WebVTT, SRT and json3.
    "parse_captions": lambda b: parse_captions(b),
    "parse_captions+srv3": lambda b: parse_captions(b, "srv3"),
    "parse_captions+vtt": lambda b: parse_captions(b, "vtt"),
    "parse_captions+json3": lambda b: parse_captions(b, "json3"),
}


@pytest.mark.parametrize("name", PARSERS)
@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(body=inputs)
def test_parser_returns_a_result_or_a_parse_error(name: str, body: bytes) -> None:
    with contextlib.suppress(ParseError):  # anything else fails the test
        PARSERS[name](body)


@pytest.mark.parametrize("name", PARSERS)
@pytest.mark.parametrize(
    "body",
    [
        b"", b"\x00" * 64, b"\xff\xfe", b"\xfe\xff\x00<", b"\xef\xbb\xbf", b"<", b"<?xml", b"{",
        b"[" * 10_000 + b"]" * 10_000, b"<a>" * 10_000, b"<div>" * 10_000,
        b'{"items": ' + b"[" * 10_000,
        b'<?xml version="1.0" encoding="utf-32"?><rss/>', b"<rss><channel><item><title>&#xD800;",
    ],
    ids=lambda b: repr(b[:16]),
)  # fmt: skip
def test_parser_handles_the_known_traps(name: str, body: bytes) -> None:
    with contextlib.suppress(ParseError):  # anything else fails the test
        PARSERS[name](body)


# --- structured input: valid containers with hostile contents -------------------------------

JSON_KEYS = ["id", "url", "title", "content_html", "content_text", "summary", "date_published",
             "date_modified", "authors", "author", "name", "attachments", "mime_type", "image",
             "tags", "language", "external_url", "items", "size_in_bytes",
             "duration_in_seconds"]  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from(["https://x/a", "2024-01-01T00:00:00Z", "/rel", "http://[::1", "video/mp4"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(JSON_KEYS), inner, max_size=6),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None)
@given(items=json_values, top=st.dictionaries(st.sampled_from(JSON_KEYS), json_values, max_size=3))
def test_json_feed_with_any_values_parses_or_fails_cleanly(items: Any, top: dict) -> None:
    import json

    doc = {"version": "https://jsonfeed.org/version/1.1", **top, "items": items}
    with contextlib.suppress(ParseError):  # anything else fails the test
        parse_feed(json.dumps(doc).encode(), URL)


XML_TAGS = ["title", "link", "guid", "pubDate", "description", "author", "dc:creator",
            "media:content", "media:thumbnail", "media:group", "enclosure", "category",
            "content:encoded", "updated", "published", "id", "summary", "content", "loc",
            "lastmod", "news:news", "news:title", "news:publication_date", "item", "entry",
            "url", "sitemap"]  # fmt: skip
XML_ATTRS = ["href", "url", "rel", "type", "medium", "length", "width", "height", "xml:base",
             "xml:lang", "duration", "src"]  # fmt: skip
ATTR_VALUES = ["", "x", "/a", "http://[::1", "-1", "99999999999999999999", "text/html", "html",
               "xhtml", "video", "javascript:x", "%zz"]  # fmt: skip
NAMESPACES = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'
)
ROOTS = {
    "rss": "", "feed": ' xmlns="http://www.w3.org/2005/Atom"',
    "rdf:RDF": ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"',
    "urlset": ' xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"',
    "sitemapindex": ' xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"',
}  # fmt: skip


def _element(tag: str, attrs: dict[str, str], text: str, children: list[str]) -> str:
    from xml.sax.saxutils import escape, quoteattr

    shown = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    return f"<{tag}{shown}>{escape(text)}{''.join(children)}</{tag}>"


attributes = st.dictionaries(st.sampled_from(XML_ATTRS), st.sampled_from(ATTR_VALUES), max_size=3)
elements = st.recursive(
    st.builds(_element, st.sampled_from(XML_TAGS), attributes, st.text(max_size=8), st.just([])),
    lambda inner: st.builds(
        _element,
        st.sampled_from(XML_TAGS),
        attributes,
        st.text(max_size=5),
        st.lists(inner, max_size=3),
    ),  # fmt: skip
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, database=None)
@given(root=st.sampled_from(sorted(ROOTS)), children=st.lists(elements, max_size=6))
def test_well_formed_feeds_and_sitemaps_with_odd_contents_parse_or_fail_cleanly(
    root: str, children: list[str]
) -> None:
    inner = "".join(children)
    if root == "rss":
        inner = f"<channel>{inner}</channel>"
    body = f"<{root} {NAMESPACES}{ROOTS[root]}>{inner}</{root}>".encode()
    for parse in (lambda b: parse_feed(b, URL), lambda b: parse_sitemap(b, URL)):
        with contextlib.suppress(ParseError):  # anything else fails the test
            parse(body)
