"""RSS 0.9x, 1.0 (RDF) and 2.0 documents, already parsed by lxml, read into posts."""

from __future__ import annotations

from lxml import etree

# RSS items borrow atom:link and atom:author, and Atom reads them the same way.
from monitor.feeds.atom import _atom_author, _atom_link
from monitor.feeds.common import (
    _XML_LANG,
    Fields,
    _abs,
    _base_of,
    _first,
    _first_date,
    _first_text,
    _FormerIds,
    _fullest,
    _lang,
    _local,
    _Names,
    _person,
    _post,
    _raw,
    _site_base,
    _stand_in_bodies,
    _title,
    _zone,
)
from monitor.feeds.media import _item_media, _media_description
from monitor.models import Post

_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"

_BODIES = (("", "description"), ("content", "encoded"))
_RSS_DATES = (
    ("", "pubdate"),
    ("dc", "date"),
    ("dcterms", "issued"),
    ("dcterms", "created"),
    ("dcterms", "modified"),
    ("atom", "published"),
    ("atom", "updated"),
)


def _rss_posts(root: etree._Element, url: str, body: bytes) -> list[Post]:
    channel = next((c for c in root if _local(c.tag) == "channel"), None)
    core = {etree.QName(root).namespace}
    if channel is not None:
        core.add(etree.QName(channel).namespace)
    names = _Names(core, "")
    cf = names.fields(channel) if channel is not None else {}
    lang = _lang(
        _first_text(cf, ("", "language"), ("dc", "language"))
        or (channel.get(_XML_LANG) if channel is not None else None)
        or root.get(_XML_LANG)
    )
    base = _site_base(_first_text(cf, ("", "link")), url)
    has_xml_base = b"xml:base" in body
    # Some feeds write item times without a zone but their own dates with one (News18 Hindi,
    # NBC New York): the item times are in that zone, not UTC.
    zone = _zone(_first_text(cf, ("", "lastbuilddate"), ("", "pubdate"), ("dc", "date")))
    items = cf.get(("", "item"), []) + [c for c in root if names(c.tag) == ("", "item")]
    former = _FormerIds(url)
    return [_rss_item(item, names, former, base, has_xml_base, lang, zone) for item in items]


def _rss_item(
    item: etree._Element,
    names: _Names,
    former_ids: _FormerIds,
    base: str,
    has_xml_base: bool,
    lang: str | None,
    zone: str | None = None,
) -> Post:
    f = names.fields(item)
    if has_xml_base:
        base = _base_of(item, base, has_xml_base)
    title_el = _first(f, ("", "title"), ("dc", "title"))
    if title_el is not None:
        title = _title(_raw(title_el), True if len(title_el) else None)
    else:
        title = _title(*(_media_description(f, names, "title") or ("", False)))

    guid_el = _first(f, ("", "guid"))
    guid = (guid_el.text or "").strip() if guid_el is not None else ""
    link = _abs(_first_text(f, ("", "link")) or _href(f), base) or _atom_link(
        f.get(("atom", "link"), []), base, has_xml_base
    )
    if (
        not link
        and guid_el is not None
        and guid.startswith(("http://", "https://"))
        and _is_permalink(guid_el)
    ):
        link = guid

    bodies = [(_raw(el), True) for k in _BODIES for el in f.get(k, ())]
    for k in f:  # Yandex and ukr.net feeds carry the whole article in <yandex:full-text>
        if k[1] == "full-text":
            bodies += [(_raw(el), True) for el in f[k]]
    if _blank(bodies):
        bodies = _stand_in_bodies(f)
        if _blank(bodies):
            bodies = [d] if (d := _media_description(f, names, "description")) else []

    author = (
        _person(_first_text(f, ("dc", "creator"), ("dc", "author"), ("itunes", "author")))
        or _person(_first_text(f, ("", "author")))
        or _atom_author(f, names)
    )
    return _post(
        ident=guid or item.get(_RDF_ABOUT),
        link=link,
        title=title,
        text=_fullest(bodies),
        author=author,
        published_at=_first_date(f, _RSS_DATES, zone),
        lang=_lang(_first_text(f, ("dc", "language"))) or lang,
        media=_item_media(item, names, base, f),
        former_ids=former_ids(guid),
    )


def _blank(bodies: list[tuple[str, bool]]) -> bool:
    """Whether none of `bodies` holds more than white space (a loop: any() would set up a
    generator for the one description of most items)."""
    for raw, _ in bodies:  # noqa: SIM110 - see above
        if raw.strip():
            return False
    return True


def _is_permalink(guid: etree._Element) -> bool:
    # `isPermalink` is as common as the spec's `isPermaLink`, and feedparser reads both.
    value = guid.get("isPermaLink")
    if value is None and len(guid.attrib):
        value = next((v for k, v in guid.attrib.items() if k.lower() == "ispermalink"), None)
    return value is None or value.strip().lower() != "false"


def _href(f: Fields) -> str | None:
    """An RSS <link href="..."/> written the Atom way, with no text."""
    return next((h for el in f.get(("", "link"), ()) if (h := el.get("href"))), None)
