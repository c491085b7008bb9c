"""The `feed` source: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed documents read into posts."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from lxml import etree

from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext, ParseError, SourceConfig
from monitor.text import absolute_url, clean_space, html_to_text, parse_date
from monitor.xmlsafe import MalformedXML, check_safe, parse_xml

Fields = dict[tuple[str, str], list[etree._Element]]  # (namespace key, local name) → elements


@dataclass(frozen=True, kw_only=True)
class FeedSource(SourceConfig):
    """`type = "feed"`: one RSS, Atom or JSON Feed URL."""

    type_name: ClassVar[str] = "feed"
    url: str

    def validate(self) -> list[str]:
        if not self.url.startswith(("http://", "https://")):
            return ["url: must be an http:// or https:// URL"]
        return []

    async def collect(self, ctx: FetchContext) -> Collected:
        resp = await ctx.http.get(self.url, state=ctx.state, timeout=ctx.timeout)
        if resp.status == 304:
            return Collected([], http_status=304, not_modified=True)
        posts = parse_feed(resp.body, resp.url, resp.headers.get("content-type"))
        return Collected(posts, http_status=resp.status)


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
        unique.setdefault(post.external_id, post)
    return list(unique.values())


def _parse(body: bytes, url: str, content_type: str | None) -> list[Post]:
    if body[:64].removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{":
        return _json_posts(body, url)
    try:
        root = parse_xml(_with_http_charset(body, content_type), base_url=url)
    except MalformedXML:
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
    if not m or m.group(1).lower() in ("utf-8", "utf8", "us-ascii", "ascii"):
        return body
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:3] == b"\xef\xbb\xbf":
        return body
    if re.match(rb"\s*<\?xml[^>]*encoding", body[:200]):
        return body
    try:
        return body.decode(m.group(1)).encode("utf-8")
    except (LookupError, UnicodeError):
        return body


# --- shared helpers -----------------------------------------------------------------------

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
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    # RSS's own namespaces: their elements are the core ones.
    "http://my.netscape.com/rdf/simple/0.9/": "",
    "http://purl.org/rss/1.0/": "",
    "http://backend.userland.com/rss2": "",
    "http://backend.userland.com/rss": "",
}
_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_HTMLISH = re.compile(r"</\w+\s*>|&#?\w+;")  # feedparser's test for "this title is HTML"
_C1 = re.compile("[\x80-\x9f]")
_C1_TO_CP1252 = {
    b: bytes([b]).decode("cp1252", errors="ignore") or None for b in range(0x80, 0xA0)
}  # producers that meant Windows-1252 quotes but wrote them as Unicode code points


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


class _Names:
    """(namespace key, lower-cased local name) of tags, cached: feeds repeat a dozen tags.

    Lower case because producers write <pubdate> as often as <pubDate> (feedparser ignores
    case too). `core` namespaces, such as the default namespace Suspilne puts on <rss>, map to
    `default` so their elements are read as the format's own.
    """

    def __init__(self, core: Iterable[str | None], default: str) -> None:
        self.core = {ns: default for ns in core if ns not in _NS}
        self.cache: dict[str, tuple[str, str]] = {}

    def __call__(self, tag: Any) -> tuple[str, str]:
        if not isinstance(tag, str):
            return ("#", "")
        hit = self.cache.get(tag)
        if hit is None:
            if tag[:1] == "{":
                ns, _, local = tag[1:].partition("}")
                key = self.core[ns] if ns in self.core else _NS.get(ns, ns)
            else:
                local, key = tag, self.core.get(None, "")
            hit = self.cache[tag] = (key, local.lower())
        return hit

    def fields(self, el: etree._Element) -> Fields:
        out: Fields = {}
        for child in el:
            out.setdefault(self(child.tag), []).append(child)
        return out


def _all(f: Fields, *keys: tuple[str, str]) -> list[etree._Element]:
    return [el for k in keys for el in f.get(k, ())]


def _first(f: Fields, *keys: tuple[str, str]) -> etree._Element | None:
    return next((el for k in keys for el in f.get(k, ())), None)


def _first_text(f: Fields, *keys: tuple[str, str]) -> str | None:
    return next((t for k in keys for el in f.get(k, ()) if (t := (el.text or "").strip())), None)


def _first_date(f: Fields, keys: Iterable[tuple[str, str]]) -> str | None:
    return next((d for k in keys for el in f.get(k, ()) if (d := _date(el.text))), None)


def _raw(el: etree._Element) -> str:
    """The content of an element as a string: its text, or its inner markup if it has children."""
    if len(el) == 0:
        return el.text or ""
    parts = [el.text or ""]
    parts.extend(etree.tostring(c, encoding="unicode", with_tail=True) for c in el)
    return "".join(parts)


def _to_text(raw: str, is_html: bool) -> str:
    text = html_to_text(raw) if is_html else clean_space(raw)
    return text.translate(_C1_TO_CP1252) if _C1.search(text) else text


def _one_line(s: str | None) -> str | None:
    if not s:
        return None
    return " ".join(s.split()) or None


def _title(raw: str | None, is_html: bool | None) -> str | None:
    """`is_html` None: RSS and JSON, where titles are plain text unless they look like HTML."""
    if not raw:
        return None
    if is_html is None:
        is_html = bool(_HTMLISH.search(raw))
    return _one_line(_to_text(raw, is_html))


def _fullest(candidates: list[tuple[str, bool]]) -> str | None:
    # Length of the raw string is a good enough proxy for "fullest", and converting only the
    # winner keeps html_to_text (the main per-item cost) to one call per item.
    best = max(candidates, key=lambda c: len(c[0]), default=None)
    if best is None or not best[0].strip():
        return None
    return _to_text(*best) or None


def _date(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
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
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
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
    # Most links in feeds are already absolute; urljoin costs ~10 us each, a quarter of the
    # fast path on media-heavy feeds.
    if href and href.startswith(("https://", "http://")) and not href[-1].isspace():
        return href
    return absolute_url(href, base)


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
) -> Post:
    external_id = (ident or "").strip() or link
    if not external_id:
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
    )


# --- Media RSS, enclosures -----------------------------------------------------------------


def _media(el: etree._Element, names: _Names, base: str, out: list[Media]) -> None:
    """Append the media an item child describes (media:*, <enclosure>, Atom rel=enclosure)."""
    key, local = names(el.tag)
    a = el.attrib
    if key == "media" and local == "content":
        url = _abs(a.get("url"), base)
        if url:
            out.append(
                Media(
                    url=url,
                    medium=_medium(a.get("medium"), a.get("type")),
                    type=a.get("type") or None,
                    width=_int(a.get("width")),
                    height=_int(a.get("height")),
                    duration=_float(a.get("duration")),
                    role="content",
                )
            )
        for child in el:  # thumbnails may sit inside the media:content they illustrate
            if names(child.tag) == ("media", "thumbnail"):
                _media(child, names, base, out)
    elif key == "media" and local == "thumbnail":
        url = _abs(a.get("url"), base)
        if url:
            width, height = _int(a.get("width")), _int(a.get("height"))
            out.append(Media(url=url, medium="image", width=width, height=height, role="thumbnail"))
    elif key == "media" and local == "group":
        for child in el:
            _media(child, names, base, out)
    elif (key, local) == ("", "enclosure") or (
        (key, local) == ("atom", "link") and a.get("rel") == "enclosure"
    ):
        url = _abs(a.get("url") or a.get("href"), base)
        if url:
            mime = a.get("type") or None
            out.append(Media(url=url, medium=_medium(None, mime), type=mime, role="enclosure"))
    elif (key, local) == ("itunes", "image"):
        url = _abs(a.get("href"), base)
        if url:
            out.append(Media(url=url, medium="image", role="image"))


def _item_media(item: etree._Element, names: _Names, base: str) -> list[Media]:
    out: list[Media] = []
    for child in item:
        _media(child, names, base, out)
    return out


def _media_description(f: Fields, names: _Names, what: str) -> tuple[str, bool] | None:
    """media:title / media:description of an item or its media:group (YouTube, Rutube)."""
    el = _first(f, ("media", what))
    if el is None:
        groups = f.get(("media", "group"), ())
        el = next((c for g in groups for c in g if names(c.tag) == ("media", what)), None)
    if el is None or not (el.text or "").strip():
        return None
    return el.text or "", el.get("type") == "html"


# --- RSS 0.9x / 1.0 (RDF) / 2.0 ----------------------------------------------------------

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
    link = _first_text(cf, ("", "link"))
    if link and re.match(r"^[\w-]+(\.[\w-]+)+(/|$)", link):
        # A channel link without a scheme ("www.example.com.br") would otherwise be read as
        # a path on the feed's host.
        link = "http://" + link
    base = _abs(link, url) or url
    has_xml_base = b"xml:base" in body
    items = cf.get(("", "item"), []) + [c for c in root if names(c.tag) == ("", "item")]
    return [_rss_item(item, names, base, has_xml_base, lang) for item in items]


def _rss_item(
    item: etree._Element, names: _Names, base: str, has_xml_base: bool, lang: str | None
) -> Post:
    f = names.fields(item)
    base = _base_of(item, base, has_xml_base)
    title_el = _first(f, ("", "title"), ("dc", "title"))
    if title_el is not None:
        title = _title(_raw(title_el), True if len(title_el) else None)
    else:
        title = _title(*(_media_description(f, names, "title") or ("", False)))

    guid_el = _first(f, ("", "guid"))
    guid = (guid_el.text or "").strip() if guid_el is not None else ""
    link = _abs(_first_text(f, ("", "link")), base) or _atom_link(
        f.get(("atom", "link"), []), base, has_xml_base
    )
    permalink = guid_el is not None and guid_el.get("isPermaLink", "true").lower() != "false"
    if not link and permalink and guid.startswith(("http://", "https://")):
        link = guid

    # Yandex and ukr.net feeds carry the whole article in <yandex:full-text> / <full-text>.
    full_texts = [k for k in f if k[1] == "full-text"]
    bodies = [(_raw(el), True) for el in _all(f, ("", "description"), ("content", "encoded"))]
    bodies += [(_raw(el), True) for el in _all(f, *full_texts)]
    if not any(raw.strip() for raw, _ in bodies):
        bodies = [d] if (d := _media_description(f, names, "description")) else []

    author = (
        _one_line(_first_text(f, ("dc", "creator"), ("itunes", "author")))
        or _rss_author(_first_text(f, ("", "author")))
        or _atom_author(f, names)
    )
    return _post(
        ident=guid or item.get(_RDF_ABOUT),
        link=link,
        title=title,
        text=_fullest(bodies),
        author=author,
        published_at=_first_date(f, _RSS_DATES),
        lang=_lang(_first_text(f, ("dc", "language"))) or lang,
        media=_item_media(item, names, base),
    )


def _rss_author(value: str | None) -> str | None:
    """RSS <author> is "email (Name)"; the name is what a reader wants."""
    m = re.search(r"\(([^()]+)\)\s*$", value or "")
    return _one_line(m.group(1) if m else value)


# --- Atom 0.3 / 1.0 ----------------------------------------------------------------------

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


# --- JSON Feed 1.0 / 1.1 -----------------------------------------------------------------


def _s(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # ids are sometimes numbers despite the spec
    return None


def _json_author(obj: dict[str, Any]) -> str | None:
    authors = obj.get("authors")  # 1.1; 1.0 has a single `author`
    for a in [*(authors if isinstance(authors, list) else []), obj.get("author")]:
        if isinstance(a, dict) and _s(a.get("name")):
            return _one_line(_s(a.get("name")))
    return None


def _json_media(item: dict[str, Any], base: str) -> list[Media]:
    media = []
    for key, role in (("image", "image"), ("banner_image", "banner")):
        image = _abs(_s(item.get(key)), base)
        if image:
            media.append(Media(url=image, medium="image", role=role))
    attachments = item.get("attachments")
    for att in attachments if isinstance(attachments, list) else ():
        url = _abs(_s(att.get("url")), base) if isinstance(att, dict) else None
        if url:
            mime = _s(att.get("mime_type"))
            duration = _float(att.get("duration_in_seconds"))
            media.append(
                Media(
                    url=url,
                    medium=_medium(None, mime),
                    type=mime,
                    duration=duration,
                    role="enclosure",
                )
            )
    return media


def _json_posts(body: bytes, url: str) -> list[Post]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"not a JSON Feed: invalid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ParseError("not a JSON Feed: no `items` list")
    base = _abs(_s(data.get("home_page_url")), url) or url
    feed_lang = _lang(_s(data.get("language")))
    feed_author = _json_author(data)  # the default for items, as the spec says
    posts = []
    for item in data["items"]:
        if not isinstance(item, dict):
            continue
        bodies = [(_s(item.get("content_html")) or "", True)]
        bodies += [(_s(item.get(k)) or "", False) for k in ("content_text", "summary")]
        posts.append(
            _post(
                ident=_s(item.get("id")),
                link=_abs(_s(item.get("url")), base) or _abs(_s(item.get("external_url")), base),
                title=_title(_s(item.get("title")), None),
                text=_fullest(bodies),
                author=_json_author(item) or feed_author,
                published_at=_date(_s(item.get("date_published")))
                or _date(_s(item.get("date_modified"))),
                lang=_lang(_s(item.get("language"))) or feed_lang,
                media=_json_media(item, base),
            )
        )
    return posts


# --- the lenient path ----------------------------------------------------------------------


def _feedparser_posts(
    body: bytes, url: str, content_type: str | None, root_name: str | None
) -> list[Post]:
    check_safe(body)
    import feedparser

    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    try:
        # A file object, never bytes: feedparser opens a bytes "document" as a file name if
        # such a file exists (a body of b"/etc/passwd" would be read from disk).
        d = feedparser.parse(
            io.BytesIO(body),
            response_headers=headers,
            resolve_relative_uris=False,
            sanitize_html=False,
        )
    except Exception as e:  # noqa: BLE001 - hostile input must not crash the whole pass
        raise ParseError(f"feedparser could not read the document: {type(e).__name__}: {e}") from e
    if not d.entries:
        if not d.get("version"):
            if root_name:
                raise ParseError(f"not a feed: the root element is <{root_name}>")
            if re.search(rb"<html|<!doctype html", body[:2048], re.I):
                raise ParseError("not a feed: the response is an HTML page")
            raise ParseError("not a feed: no RSS, Atom or JSON Feed structure found")
        if d.get("bozo"):
            raise ParseError(f"broken feed, no items could be read: {d.get('bozo_exception')}")
        return []
    feed_lang = _lang(d.feed.get("language"))
    return [_feedparser_post(e, url, feed_lang) for e in d.entries]


def _fp_is_html(detail: dict[str, Any] | None) -> bool:
    return ((detail or {}).get("type") or "text/html").lower() != "text/plain"


def _feedparser_post(e: Any, base: str, lang: str | None) -> Post:
    bodies = [(c.get("value") or "", _fp_is_html(c)) for c in e.get("content", [])]
    if e.get("summary"):
        bodies.append((e["summary"], _fp_is_html(e.get("summary_detail"))))
    # dict.get, not e.get: feedparser's own get() maps a missing `updated` onto `published`
    # with a DeprecationWarning.
    published = _date(dict.get(e, "published")) or _date(dict.get(e, "updated"))
    published = published or _struct_iso(
        dict.get(e, "published_parsed") or dict.get(e, "updated_parsed")
    )
    author = (e.get("author_detail") or {}).get("name") or e.get("author")
    return _post(
        ident=e.get("id"),
        link=_abs(e.get("link"), base),
        title=_title(e.get("title"), _fp_is_html(e.get("title_detail"))),
        text=_fullest(bodies),
        author=_one_line(author),
        published_at=published,
        lang=lang,
        media=_feedparser_media(e, base),
    )


def _feedparser_media(e: Any, base: str) -> list[Media]:
    out = []
    for m in e.get("media_content", []):
        url = _abs(m.get("url"), base)
        if url:
            out.append(
                Media(
                    url=url,
                    medium=_medium(m.get("medium"), m.get("type")),
                    type=m.get("type") or None,
                    width=_int(m.get("width")),
                    height=_int(m.get("height")),
                    duration=_float(m.get("duration")),
                    role="content",
                )
            )
    for m in e.get("media_thumbnail", []):
        url = _abs(m.get("url"), base)
        if url:
            width, height = _int(m.get("width")), _int(m.get("height"))
            out.append(Media(url=url, medium="image", width=width, height=height, role="thumbnail"))
    for m in e.get("enclosures", []):
        url = _abs(m.get("href"), base)
        if url:
            mime = m.get("type") or None
            out.append(Media(url=url, medium=_medium(None, mime), type=mime, role="enclosure"))
    return out
