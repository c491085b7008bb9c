"""Atom 0.3 and 1.0 documents, already parsed by lxml, read into posts."""

from __future__ import annotations

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
    _fullest,
    _lang,
    _Names,
    _one_line,
    _post,
    _raw,
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


def _atom_content(el: etree._Element) -> tuple[str, bool]:
    """(raw content, is HTML) of an Atom text construct, honouring type= (and 0.3's mode=)."""
    kind = (el.get("type") or "text").strip().lower()
    mode = el.get("mode")
    if len(el) or kind in ("xhtml", "application/xhtml+xml"):
        return _raw(el), True
    if kind in ("html", "text/html") or mode == "escaped":
        return el.text or "", True
    return el.text or "", False


def _atom_link(links: list[etree._Element], base: str, has_xml_base: bool) -> str | None:
    """The rel="alternate" link, preferring an HTML one, resolved against its xml:base."""
    alternates = [
        el for el in links if el.get("rel", "alternate") == "alternate" and el.get("href")
    ]
    if not alternates:
        return None
    html = (el for el in alternates if (el.get("type") or "text/html").startswith("text/html"))
    best = next(html, alternates[0])
    return _abs(best.get("href"), _base_of(best, base, has_xml_base))


def _atom_author(f: Fields, names: _Names) -> str | None:
    for author in f.get(("atom", "author"), ()):
        for child in author:
            if names(child.tag) == ("atom", "name") and (child.text or "").strip():
                return _one_line(child.text)
    return None


def _atom_posts(root: etree._Element, url: str, body: bytes) -> list[Post]:
    names = _Names({etree.QName(root).namespace}, "atom")
    has_xml_base = b"xml:base" in body
    ff = names.fields(root)
    feed_base = _atom_link(ff.get(("atom", "link"), []), url, has_xml_base) or url
    feed_author = _atom_author(ff, names)
    feed_lang = _lang(root.get(_XML_LANG))
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
            # YouTube's channel feeds keep the video description in media:group.
            bodies = [d] if (d := _media_description(f, names, "description")) else []
        posts.append(
            _post(
                ident=_first_text(f, ("atom", "id")),
                link=_atom_link(f.get(("atom", "link"), []), base, has_xml_base),
                title=title,
                text=_fullest(bodies),
                author=_atom_author(f, names) or feed_author,  # the feed's author is the default
                published_at=_first_date(f, _ATOM_DATES),
                lang=_lang(entry.get(_XML_LANG)) or feed_lang,
                media=_item_media(entry, names, base),
            )
        )
    return posts
