"""What every feed format shares: tag names, element text, titles, dates, links and `_post`."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

from lxml import etree

from monitor.models import Media, Post
from monitor.text import absolute_url, clean_space, html_to_text, parse_date, without_markup

Fields = dict[tuple[str, str], list[etree._Element]]  # (namespace key, local name) → elements

_NS = {
    "http://www.w3.org/2005/Atom": "atom",
    "http://purl.org/atom/ns#": "atom",  # Atom 0.3
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://search.yahoo.com/mrss/": "media",
    "http://search.yahoo.com/mrss": "media",
    "https://search.yahoo.com/mrss/": "media",  # a common typo that feedparser forgives too
    "https://search.yahoo.com/mrss": "media",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",  # and its spellings: _ns_key
    "http://www.w3.org/1999/xhtml": "xhtml",
    # RSS's own namespaces: their elements are the core ones.
    "http://my.netscape.com/rdf/simple/0.9/": "",
    "http://purl.org/rss/1.0/": "",
    "http://backend.userland.com/rss2": "",
    "http://backend.userland.com/rss": "",
}


def _loose(ns: str) -> str:
    return re.sub(r"^https?://(?:www\.)?", "", ns.strip().lower()).rstrip("/")


# Namespaces as producers misspell them: capitals (Apple's own documentation long gave the
# iTunes one as http://www.itunes.com/DTDs/Podcast-1.0.dtd, and most podcast feeds copied
# it), https, no www, a trailing slash. XML says they are other namespaces; feedparser, and
# every podcast app, reads them as the real ones.
_NS_LOOSE = {_loose(ns): key for ns, key in _NS.items()}


def _ns_key(ns: str) -> str:
    return _NS.get(ns) or _NS_LOOSE.get(_loose(ns), ns)


_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_XHTML = "http://www.w3.org/1999/xhtml"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_HTMLISH = re.compile(r"</\w+\s*>|&#?\w+;")  # feedparser's test for "this title is HTML"
_C1 = re.compile("[\x80-\x9f]")
# Producers that meant Windows-1252 quotes but wrote them as Unicode code points. The five
# that Windows-1252 leaves undefined stay: they are half of a double-encoded Cyrillic letter
# ("Ð\x9d" is "Н"), which monitor.charset.repair_mojibake reads whole, then drops if alone.
_C1_TO_CP1252 = {
    b: bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(0x80, 0xA0)
}


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


class _Names:
    """(namespace key, lower-cased local name) of tags, cached: feeds repeat a dozen tags.

    Lower case because producers write <pubdate> as often as <pubDate> (feedparser ignores
    case too). `core` namespaces, such as the default namespace Suspilne puts on <rss>, map to
    `default` so their elements are read as the format's own.
    """

    def __init__(self, core: Iterable[str | None], default: str) -> None:
        self.core = {ns: default for ns in core if ns is None or _ns_key(ns) == ns}
        self.cache: dict[str, tuple[str, str]] = {}

    def __call__(self, tag: Any) -> tuple[str, str]:
        if not isinstance(tag, str):
            return ("#", "")
        hit = self.cache.get(tag)
        if hit is None:
            if tag[:1] == "{":
                ns, _, local = tag[1:].partition("}")
                key = self.core[ns] if ns in self.core else _ns_key(ns)
            else:
                local, key = tag, self.core.get(None, "")
            hit = self.cache[tag] = (key, local.lower())
        return hit

    def fields(self, el: etree._Element) -> Fields:
        out: Fields = {}
        cache = self.cache
        for child in el:  # a dozen children an item: the cache is asked here, not through a call
            tag = child.tag
            key = cache.get(tag) if tag.__class__ is str else None
            if key is None:
                key = self(tag)
            if (same := out.get(key)) is None:
                out[key] = [child]
            else:
                same.append(child)
        return out


def _all(f: Fields, *keys: tuple[str, str]) -> list[etree._Element]:
    return [el for k in keys for el in f.get(k, ())]


# Loops, not next() over a generator expression: these run a dozen times an item, and each
# call set a generator up.
def _first(f: Fields, *keys: tuple[str, str]) -> etree._Element | None:
    for k in keys:
        if els := f.get(k):  # a key's list is never empty
            return els[0]
    return None


def _first_text(f: Fields, *keys: tuple[str, str]) -> str | None:
    for k in keys:
        for el in f.get(k, ()):
            if t := (el.text or "").strip():
                return t
    return None


def _first_date(f: Fields, keys: Iterable[tuple[str, str]], zone: str | None = None) -> str | None:
    for k in keys:
        for el in f.get(k, ()):
            if d := _date(el.text, zone):
                return d
    return None


def _raw(el: etree._Element) -> str:
    """The content of an element as a string: its text, or its inner markup if it has children."""
    if len(el) == 0:
        return el.text or ""
    parts = [el.text or ""]
    parts.extend(etree.tostring(c, encoding="unicode", with_tail=True) for c in el)
    raw = "".join(parts)
    # XHTML under a prefix (<xhtml:p>): an HTML parser knows <p>, not <xhtml:p>.
    for prefix in [p for p, ns in el.nsmap.items() if p and ns == _XHTML]:
        raw = raw.replace(f"<{prefix}:", "<").replace(f"</{prefix}:", "</")
    return raw


def _to_text(raw: str, is_html: bool) -> str:
    if is_html:
        text = html_to_text(raw)
    else:
        # Plain text by its type, but a post's text never carries markup (`type="text"`
        # summaries that hold a <script> or escaped HTML, as careless publishers write them).
        text = clean_space(raw)
        text = without_markup(text) if "<" in text else text
    # isascii() reads a flag. A C1 control is two bytes in UTF-8, the first 0xC2, which is
    # found by memchr: half the time of the regex, which the few texts with 0xC2 still need.
    if (
        text.isascii()
        or b"\xc2" not in text.encode("utf-8", "surrogatepass")
        or not _C1.search(text)
    ):
        return text
    return text.translate(_C1_TO_CP1252)


def _one_line(s: str | None) -> str | None:
    if not s:
        return None
    return " ".join(s.split()) or None


_EMAIL = r"(?:mailto:)?[^\s<>()@]+@[^\s<>()]+"
_NAME_EMAIL = re.compile(rf"(.+?)\s*(?:\(\s*{_EMAIL}\s*\)|<\s*{_EMAIL}\s*>)")
_EMAIL_NAME = re.compile(rf"{_EMAIL}\s*\((.+)\)")


def _person(value: str | None) -> str | None:
    """The name in an author field, whichever way round it is written with an email.

    RSS asks for "email (Name)"; feeds also write "Name (email)" and "Name <email>". An
    email alone stays, as does a name with something else in brackets ("Jane Roe (Reuters)").
    """
    s = _one_line(value)
    if not s or "@" not in s:
        return s
    if m := _EMAIL_NAME.fullmatch(s):
        return _one_line(m.group(1))
    if m := _NAME_EMAIL.fullmatch(s):
        return _one_line(m.group(1).strip("\"' ")) or s
    return s


def _title(raw: str | None, is_html: bool | None) -> str | None:
    """`is_html` None: RSS and JSON, where titles are plain text unless they look like HTML."""
    if not raw:
        return None
    if is_html is None:
        is_html = ("<" in raw or "&" in raw) and _HTMLISH.search(raw) is not None
    return _one_line(_to_text(raw, is_html))


def _stand_in_bodies(f: Fields) -> list[tuple[str, bool]]:
    """An item's text where none of its format's usual elements holds any.

    An XHTML <body> (xhtml:body), Dublin Core's description, the iTunes summary of a
    podcast episode, and the <fullitem> or <body> some newsroom CMSs write.
    """
    found = _all(f, ("dc", "description"), ("itunes", "summary"))
    found += [el for k, els in f.items() if k[1] in ("body", "fullitem") for el in els]
    return [(_raw(el), True) for el in found]


def _fullest(candidates: list[tuple[str, bool]]) -> str | None:
    # Length of the raw string is a good enough proxy for "fullest", and converting only the
    # winner keeps html_to_text (the main per-item cost) to one call per item.
    if len(candidates) == 1:  # the usual item: one description
        best: tuple[str, bool] | None = candidates[0]
    else:
        best = max(candidates, key=lambda c: len(c[0]), default=None)
    if best is None or not best[0].strip():
        return None
    return _to_text(*best) or None


# A time of day with nothing after it: no zone was written.
_ZONELESS = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?$")
_OFFSET = re.compile(r"\s([+-]\d{2}:?\d{2})$")


def _zone(raw: str | None) -> str | None:
    """The numeric UTC offset a date is written with ("+0530"), or None."""
    m = _OFFSET.search((raw or "").strip())
    return m.group(1) if m else None


def _date(raw: str | None, zone: str | None = None) -> str | None:
    """`zone`: the offset the feed writes its own dates in, for item times written without one
    ("Friday, January 29, 2021 04:42 PM" in an IST feed is 11:12 UTC, not 16:42)."""
    if not raw or not raw.strip():
        return None
    if zone and _ZONELESS.search(raw.strip()):
        dated = parse_date(f"{raw.strip()} {zone}")
        if dated:
            return dated
    return parse_date(raw) or _feedparser_date(raw)


def _feedparser_date(raw: str) -> str | None:
    # feedparser knows dozens of odd date formats (Greek, Korean, W3DTF variants); it is only
    # imported when our own parser gives up, which is rare.
    try:
        from feedparser.datetimes import _parse_date
    except ImportError:
        return None
    try:
        return _struct_iso(_parse_date(raw))
    except Exception:  # noqa: BLE001 - a third-party date parser must not break the feed
        return None


def _struct_iso(st: time.struct_time | None) -> str | None:
    if not st or not 1 <= st.tm_year <= 9999:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", st)


def _lang(value: str | None) -> str | None:
    return (value or "").strip().replace("_", "-") or None


def _int(value: Any) -> int | None:
    if value is None:  # the usual absent attribute: no exception to raise and catch
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None  # NaN would poison the JSON column


def _medium(medium: str | None, mime: str | None) -> str | None:
    if medium and medium.strip():
        return medium.strip().lower()
    major = (mime or "").partition("/")[0].strip().lower()
    return major if major in ("image", "video", "audio") else None


def _abs(href: str | None, base: str) -> str | None:
    if href and "&amp;" in href:
        # Escaped twice by the publisher (often inside CDATA, where nothing unescapes it):
        # `&amp;utm_medium=` would reach the site as a parameter named `amp;utm_medium`.
        href = href.replace("&amp;", "&")
    # Most links in feeds are already absolute; urljoin costs ~10 us each, a quarter of the
    # fast path on media-heavy feeds.
    if href and href.startswith(("https://", "http://")) and not href[-1].isspace():
        return href
    return absolute_url(href, base)


def _site_base(link: str | None, url: str) -> str:
    """The base for an RSS channel's relative links: its own <link>, else the feed URL."""
    if link and _SCHEMELESS_HOST.match(link):
        # A channel link without a scheme ("www.example.com.br") would otherwise be read as
        # a path on the feed's host.
        link = "http://" + link
    return _abs(link, url) or url


_SCHEMELESS_HOST = re.compile(r"^[\w-]+(\.[\w-]+)+(/|$)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


class _FormerIds:
    """The id earlier releases stored for an item whose own id is relative (`<guid>1000`).

    feedparser resolves a guid or Atom id against the feed URL as if it were a link; the
    lenient path stored `https://host/feed/1000` where the lxml path stored `1000`. Both now
    give the id as written, and name the resolved form so that an archive holding it keeps
    its post (Store._adopt_former_ids).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        # urljoin costs ~10 us; feeds whose every guid is relative ("story-1") have hundreds.
        # A plain segment joins as the feed URL's directory plus itself.
        self.directory = urljoin(url, "_")[:-1]

    def __call__(self, ident: str | None) -> tuple[str, ...]:
        raw = (ident or "").strip()
        if not raw or _SCHEME.match(raw):  # tag:, urn:, yt:video:, https:... are not resolved
            return ()
        if raw[0] not in "/.?#\\" and "/." not in raw:
            return (self.directory + raw,)
        resolved = urljoin(self.url, raw)
        return (resolved,) if resolved != raw else ()


def _base_of(el: etree._Element, default: str, has_xml_base: bool) -> str:
    """xml:base where the document gives one for `el`, else the feed's link or its URL."""
    if has_xml_base:
        node: etree._Element | None = el
        while node is not None:
            if _XML_BASE in node.attrib:
                return el.base or default
            node = node.getparent()
    return default


def _post(
    *,
    ident: str | None,
    link: str | None,
    title: str | None,
    text: str | None,
    author: str | None,
    published_at: str | None,
    lang: str | None,
    media: Iterable[Media],
    former_ids: tuple[str, ...] = (),
) -> Post:
    external_id = (ident or "").strip() or link
    if not external_id:
        import hashlib  # here: it loads OpenSSL, kept out of the parse worker's start-up

        seed = f"{title or ''}\n{published_at or ''}" if title or published_at else text or ""
        external_id = "sha1:" + hashlib.sha1(seed.encode("utf-8")).hexdigest()
    unique: dict[tuple[str, str | None], Media] = {}
    for m in media:  # media:group often repeats a media:content
        unique.setdefault((m.url, m.role), m)
    return Post(
        external_id=external_id,
        url=link,
        title=title,
        text=text,
        author=author,
        kind="article",
        published_at=published_at,
        lang=lang,
        media=tuple(unique.values()),
        former_ids=former_ids,
    )
