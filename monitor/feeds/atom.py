"""Atom 0.3 and 1.0 documents, already parsed by lxml, read into posts."""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from monitor.feeds.common import (
    _XML_LANG,
    Fields,
    _abs,
    _all,
    _base_of,
    _first,
    _first_date,
    _first_text,
    _FormerIds,
    _fullest,
    _lang,
    _Names,
    _person,
    _post,
    _raw,
    _stand_in_bodies,
    _title,
)
from monitor.feeds.media import _item_media, _media_description
from monitor.models import Post

_ATOM_DATES = (
    ("atom", "published"),
    ("atom", "issued"),  # 0.3
    ("atom", "created"),  # 0.3
    ("atom", "updated"),
    ("atom", "modified"),  # 0.3
    ("dc", "date"),
)


_HTML_TYPES = ("html", "text/html", "xhtml", "application/xhtml+xml")


def _atom_content(el: etree._Element) -> tuple[str, bool]:
    """(raw content, is HTML) of an Atom text construct, honouring type= (and 0.3's mode=)."""
    kind = (el.get("type") or "text").strip().lower()
    mode = el.get("mode")
    if len(el) or kind in ("xhtml", "application/xhtml+xml"):
        return _raw(el), True
    if mode == "base64" or ("/" in kind and not kind.startswith("text/") and "xml" not in kind):
        # Atom 0.3's mode="base64", and 1.0's rule for any other media type: the element
        # holds the bytes in base64. Shown as text, they would be a post of gibberish.
        return _base64_text(el.text or ""), kind in _HTML_TYPES
    if kind in ("html", "text/html") or mode == "escaped":
        return el.text or "", True
    return el.text or "", False


def _base64_text(value: str) -> str:
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return value  # not base64 after all: the text as written
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return ""  # an image or a file, not text: no text rather than gibberish


def _atom_link(links: list[etree._Element], base: str, has_xml_base: bool) -> str | None:
    """The rel="alternate" link, preferring an HTML one, resolved against its xml:base."""
    # The URL as the element's text rather than its href is a common slip (feedparser
    # reads it too).
    alternates = [
        (el, href)
        for el in links
        if el.get("rel", "alternate") == "alternate"
        and (href := el.get("href") or (el.text or "").strip())
    ]
    if not alternates:
        return None
    html = (a for a in alternates if (a[0].get("type") or "text/html").startswith("text/html"))
    best, href = next(html, alternates[0])
    return _abs(href, _base_of(best, base, has_xml_base))


def _atom_author(f: Fields, names: _Names) -> str | None:
    for author in f.get(("atom", "author"), ()):
        for child in author:
            if names(child.tag) == ("atom", "name") and (child.text or "").strip():
                return _person(child.text)
    return None


def _other_author(f: Fields) -> str | None:
    """dc:creator, dc:author or itunes:author of an entry with no atom:author."""
    return _person(_first_text(f, ("dc", "creator"), ("dc", "author"), ("itunes", "author")))


def _atom_posts(root: etree._Element, url: str, body: bytes) -> list[Post]:
    names = _Names({etree.QName(root).namespace}, "atom")
    has_xml_base = b"xml:base" in body
    ff = names.fields(root)
    feed_base = _atom_link(ff.get(("atom", "link"), []), url, has_xml_base) or url
    feed_author = _atom_author(ff, names)
    feed_lang = _lang(root.get(_XML_LANG))
    former_ids = _FormerIds(url)
    posts = []
    for entry in ff.get(("atom", "entry"), ()):
        f = names.fields(entry)
        base = _base_of(entry, feed_base, has_xml_base)
        title_el = _first(f, ("atom", "title"))
        if title_el is not None:
            title = _title(*_atom_content(title_el))
        else:
            title = _title(*(_media_description(f, names, "title") or ("", False)))
        contents = _all(f, ("atom", "content"), ("atom", "summary"))
        bodies = [_atom_content(el) for el in contents if not el.get("src")]  # src: not inline
        bodies += [(_raw(el), True) for el in f.get(("content", "encoded"), ())]
        if not any(raw.strip() for raw, _ in bodies):
            bodies = _stand_in_bodies(f)
        if not any(raw.strip() for raw, _ in bodies):
            # YouTube's channel feeds keep the video description in media:group.
            bodies = [d] if (d := _media_description(f, names, "description")) else []
        ident = _first_text(f, ("atom", "id"))
        posts.append(
            _post(
                ident=ident,
                link=_atom_link(f.get(("atom", "link"), []), base, has_xml_base),
                title=title,
                text=_fullest(bodies),
                # The feed's author is the default.
                author=_atom_author(f, names) or _other_author(f) or feed_author,
                published_at=_first_date(f, _ATOM_DATES),
                lang=_lang(entry.get(_XML_LANG)) or feed_lang,
                media=_item_media(entry, names, base, f),
                former_ids=former_ids(ident),
            )
        )
    return posts
