"""Pure: which monitor.feeds parser reads a fetched RSS, Atom or JSON Feed document."""

from __future__ import annotations

import re

from monitor.charset import charset_of, xml_in_utf8
from monitor.feeds.atom import _atom_posts
from monitor.feeds.common import _local
from monitor.feeds.jsonfeed import _json_posts
from monitor.feeds.lenient import _feedparser_posts  # read at call time: tests swap it
from monitor.feeds.rss import _rss_posts
from monitor.models import Post
from monitor.xmlsafe import MalformedXML, parse_xml


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> list[Post]:
    """Posts of an RSS, Atom or JSON Feed document fetched from `url`; ParseError otherwise."""
    return read_feed(body, url, content_type)[0]


def read_feed(
    body: bytes, url: str, content_type: str | None = None
) -> tuple[list[Post], list[str]]:
    """`parse_feed`, and the notices for the user (a charset label that was wrong).

    Well-formed XML takes an lxml fast path (about 10 ms for 200 items, plus html_to_text on
    each item's body); documents lxml rejects (broken markup, undeclared encodings, HTML
    entities) go to feedparser, several times slower but lenient. Entity declarations and
    absurd nesting are refused before either parser sees the document.
    """
    # Feeds do list an item twice (Suspilne's ukr.net feed does); the first, nearer the top
    # and so usually the newer, is kept so the archive does not see a spurious edit.
    unique: dict[str, Post] = {}
    notices: list[str] = []
    for post in _parse(body, url, content_type, notices):
        # An item with no title, link or text (a truncated or empty one) has nothing to
        # archive or match, and no id of its own: all such items would share one.
        if post.title or post.url or post.text:
            unique.setdefault(post.external_id, post)
    return list(unique.values()), notices


def _parse(body: bytes, url: str, content_type: str | None, notices: list[str]) -> list[Post]:
    if body[:64].removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return _json_posts(body, url)
    xml, reading = xml_in_utf8(body, content_type)
    if reading.notice:
        notices.append(reading.notice)
    if xml is not body and charset_of(content_type):
        # Both parsers now get UTF-8 that says so: the header must not say otherwise.
        content_type = re.sub(
            r"charset\s*=\s*[\"']?[\w.:-]+[\"']?", "charset=utf-8", content_type or ""
        )
    body = xml
    try:
        root = parse_xml(body, base_url=url)
    except MalformedXML:
        return _feedparser_posts(body, url, content_type, None)
    local = _local(root.tag)
    if local in ("rss", "RDF"):
        return _rss_posts(root, url, body)
    if local == "feed":
        return _atom_posts(root, url, body)
    return _feedparser_posts(body, url, content_type, local)
