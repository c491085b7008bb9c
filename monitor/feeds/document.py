"""Pure: which monitor.feeds parser reads a fetched RSS, Atom or JSON Feed document."""

from __future__ import annotations

import re

from monitor.charset import in_utf8, undeclared_legacy
from monitor.feeds.atom import _atom_posts
from monitor.feeds.common import _local
from monitor.feeds.jsonfeed import _json_posts
from monitor.feeds.lenient import _feedparser_posts  # read at call time: tests swap it
from monitor.feeds.rss import _rss_posts
from monitor.models import Post
from monitor.xmlsafe import MalformedXML, parse_xml


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> list[Post]:
    """Posts of an RSS, Atom or JSON Feed document fetched from `url`; ParseError otherwise.

    Well-formed XML takes an lxml fast path (about 10 ms for 200 items, plus html_to_text on
    each item's body); documents lxml rejects (broken markup, undeclared encodings, HTML
    entities) go to feedparser, several times slower but lenient. Entity declarations and
    absurd nesting are refused before either parser sees the document.
    """
    # Feeds do list an item twice (Suspilne's ukr.net feed does); the first, nearer the top
    # and so usually the newer, is kept so the archive does not see a spurious edit.
    unique: dict[str, Post] = {}
    for post in _parse(body, url, content_type):
        # An item with no title, link or text (a truncated or empty one) has nothing to
        # archive or match, and no id of its own: all such items would share one.
        if post.title or post.url or post.text:
            unique.setdefault(post.external_id, post)
    return list(unique.values())


def _parse(body: bytes, url: str, content_type: str | None) -> list[Post]:
    if body[:64].removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return _json_posts(body, url)
    xml = _with_http_charset(body, content_type)
    try:
        root = parse_xml(xml, base_url=url)
    except MalformedXML:
        # feedparser would read an undeclared legacy encoding as Windows-1252: give it the
        # text as guessed, as `parse_xml` read it before finding it malformed all the same.
        legacy = undeclared_legacy(body) if xml is body else None
        if legacy is not None:
            body = in_utf8(body, legacy)
        return _feedparser_posts(body, url, content_type, None)
    local = _local(root.tag)
    if local in ("rss", "RDF"):
        return _rss_posts(root, url, body)
    if local == "feed":
        return _atom_posts(root, url, body)
    return _feedparser_posts(body, url, content_type, local)


def _with_http_charset(body: bytes, content_type: str | None) -> bytes:
    """`body` in UTF-8 when HTTP names a charset and the document names none (no BOM, no decl).

    Without this, a Latin-1 feed served as `text/xml; charset=iso-8859-1` with no XML
    declaration is invalid UTF-8 to lxml and costs a trip through feedparser.
    """
    m = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.I)
    charset = m.group(1) if m else None
    if charset is None or charset.lower() in ("utf-8", "utf8", "us-ascii", "ascii"):
        return body
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:3] == b"\xef\xbb\xbf":
        return body
    if re.match(rb"\s*<\?xml[^>]*encoding", body[:200]):
        return body
    try:
        return body.decode(charset).encode("utf-8")
    except (LookupError, UnicodeError):
        return body
