"""Pure: which monitor.feeds parser reads a fetched RSS, Atom or JSON Feed document."""

from __future__ import annotations

import dataclasses
import re

from monitor.charset import charset_of, repair_mojibake, xml_in_utf8
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
            unique.setdefault(post.external_id, _repaired(post))
    return list(unique.values()), notices


def _repaired(post: Post) -> Post:
    """`post` with mojibake made upstream ("CafÃ©", "&#226;&#128;&#166;") undone."""
    title, text, author = (
        repair_mojibake(post.title),
        repair_mojibake(post.text),
        repair_mojibake(post.author),
    )
    if title is post.title and text is post.text and author is post.author:
        return post
    return dataclasses.replace(post, title=title, text=text, author=author)


def _parse(body: bytes, url: str, content_type: str | None, notices: list[str]) -> list[Post]:
    if body[:64].removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return _json_posts(body, url)
    try:
        root = parse_xml(body, base_url=url, content_type=content_type, notices=notices)
    except MalformedXML:
        # feedparser gets the document as it was read (UTF-8 that says so), with a header
        # that does not say otherwise.
        body, reading = xml_in_utf8(body, content_type)
        if reading.notice and reading.notice not in notices:
            notices.append(reading.notice)
        return _feedparser_posts(body, url, _utf8_type(content_type), None)
    local = _local(root.tag)
    if local in ("rss", "RDF"):
        return _rss_posts(root, url, body)
    if local == "feed":
        return _atom_posts(root, url, body)
    body, _ = xml_in_utf8(body, content_type)
    return _feedparser_posts(body, url, _utf8_type(content_type), local)


def _utf8_type(content_type: str | None) -> str | None:
    if not charset_of(content_type):
        return content_type
    return re.sub(r"charset\s*=\s*[\"']?[\w.:-]+[\"']?", "charset=utf-8", content_type or "")
