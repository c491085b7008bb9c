"""The `feed` source: RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed documents read into posts."""

from __future__ import annotations

import hashlib
import io
import json
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
    return _unique(_parse(body, url, content_type))


def _parse(body: bytes, url: str, content_type: str | None) -> list[Post]:
    if _first_byte(body) == b"{":
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


def _unique(posts: list[Post]) -> list[Post]:
    # Feeds do list an item twice (Suspilne's ukr.net feed does); the first, nearer the top
    # and so usually the newer, is kept so the archive does not see a spurious edit.
    seen: set[str] = set()
    out = []
    for p in posts:
        if p.external_id not in seen:
            seen.add(p.external_id)
            out.append(p)
    return out


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
    "http://news.yandex.ru": "yandex",
    # RSS's own namespaces: their elements are the core ones.
    "http://my.netscape.com/rdf/simple/0.9/": "",
    "http://purl.org/rss/1.0/": "",
    "http://backend.userland.com/rss2": "",
    "http://backend.userland.com/rss": "",
}
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_HTMLISH = re.compile(r"</\w+\s*>|&#?\w+;")  # feedparser's test for "this title is HTML"
_C1 = re.compile("[\x80-\x9f]")
_C1_TO_CP1252 = {
    b: bytes([b]).decode("cp1252", errors="ignore") or None for b in range(0x80, 0xA0)
}  # producers that meant Windows-1252 quotes but wrote them as Unicode code points
_HTML_TYPES = ("html", "text/html")
_XHTML_TYPES = ("xhtml", "application/xhtml+xml")


def _first_byte(body: bytes) -> bytes:
    head = body[:64].removeprefix(b"\xef\xbb\xbf").lstrip()
    return head[:1]


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


class _Names:
    """(namespace key, lower-cased local name) of tags, cached: feeds repeat a dozen tags.

    Lower case because producers write <pubdate> as often as <pubDate>, and feedparser, the
    reference readers are compared with, ignores case too.
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
                key = self.core.get(ns) if ns in self.core else _NS.get(ns, ns)
            else:
                ns, local = None, tag
                key = self.core.get(None, "")
            hit = self.cache[tag] = (key or "", local.lower())
        return hit


def _children(el: etree._Element, names: _Names) -> dict[tuple[str, str], list[etree._Element]]:
    out: dict[tuple[str, str], list[etree._Element]] = {}
    for child in el:
        out.setdefault(names(child.tag), []).append(child)
    return out


def _raw(el: etree._Element) -> str:
    """The content of an element as a string: its text, or its inner markup if it has children."""
    if len(el) == 0:
        return el.text or ""
    parts = [el.text or ""]
    parts.extend(etree.tostring(c, encoding="unicode", with_tail=True) for c in el)
    return "".join(parts)


def _fix_c1(s: str) -> str:
    return s.translate(_C1_TO_CP1252) if _C1.search(s) else s


def _to_text(raw: str, is_html: bool) -> str:
    return _fix_c1(html_to_text(raw) if is_html else clean_space(raw))


def _one_line(s: str | None) -> str | None:
    s = " ".join(s.split()) if s else ""
    return s or None


def _title(raw: str | None, is_html: bool | None) -> str | None:
    """`is_html` None: RSS, where titles are plain text unless they look like HTML."""
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
        parsed = _parse_date(raw)
    except Exception:  # noqa: BLE001 - a third-party date parser must not break the feed
        return None
    return _struct_iso(parsed)


def _struct_iso(st: time.struct_time | None) -> str | None:
    if not st or not 1 <= st.tm_year <= 9999:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", st)


def _lang(value: str | None) -> str | None:
    value = (value or "").strip().replace("_", "-")
    return value or None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def _medium(medium: str | None, mime: str | None) -> str | None:
    if medium:
        return medium.strip().lower() or None
    major = (mime or "").partition("/")[0].strip().lower()
    return major if major in ("image", "video", "audio") else None


def _author_name(value: str | None) -> str | None:
    """RSS <author> is "email (Name)"; the name is what a reader wants."""
    value = (value or "").strip()
    m = re.search(r"\(([^()]+)\)\s*$", value)
    return _one_line(m.group(1) if m else value)


def _external_id(
    ident: str | None, link: str | None, title: str | None, date: str | None, text: str | None
) -> str:
    if ident and ident.strip():
        return ident.strip()
    if link:
        return link
    seed = f"{title or ''}\n{date or ''}" if title or date else (text or "")
    return "sha1:" + hashlib.sha1(seed.encode("utf-8")).hexdigest()


def _abs(href: str | None, base: str) -> str | None:
    # Most links in feeds are already absolute; urljoin costs ~10 us each, a quarter of the
    # fast path on media-heavy feeds.
    if href and href.startswith(("https://", "http://")) and not href[-1].isspace():
        return href
    return absolute_url(href, base)


def _bare_host_link(link: str | None) -> str | None:
    # Some CMSs write the channel link without a scheme ("www.example.com"); as a base URL it
    # would otherwise be taken as a path on the feed's host.
    if link and re.match(r"^[\w-]+(\.[\w-]+)+(/|$)", link):
        return "http://" + link
    return link


def _base_of(el: etree._Element, default: str, has_xml_base: bool) -> str:
    """xml:base where the document gives one for `el`, else the feed's link or its URL."""
    if has_xml_base:
        node: etree._Element | None = el
        while node is not None:
            if _XML_BASE in node.attrib:
                return el.base or default
            node = node.getparent()
    return default


def _dedup(media: list[Media]) -> tuple[Media, ...]:
    seen: set[tuple[str, str | None]] = set()
    out = []
    for m in media:
        if (m.url, m.role) not in seen:
            seen.add((m.url, m.role))
            out.append(m)
    return tuple(out)


def _post(
    *,
    ident: str | None,
    link: str | None,
    title: str | None,
    text: str | None,
    author: str | None,
    published_at: str | None,
    lang: str | None,
    media: list[Media],
) -> Post:
    return Post(
        external_id=_external_id(ident, link, title, published_at, text),
        url=link,
        title=title,
        text=text,
        author=author,
        kind="article",
        published_at=published_at,
        lang=lang,
        media=_dedup(media),
    )


# --- Media RSS, enclosures -----------------------------------------------------------------


def _media(el: etree._Element, key: str, local: str, base: str, names: _Names, out: list[Media]):
    """Append the media an item child describes (media:*, <enclosure>, Atom rel=enclosure)."""
    a = el.attrib
    if key == "media":
        if local == "content" and a.get("url"):
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
                ckey, clocal = names(child.tag)
                if ckey == "media" and clocal == "thumbnail":
                    _media(child, ckey, clocal, base, names, out)
        elif local == "thumbnail":
            url = _abs(a.get("url"), base)
            if url:
                out.append(
                    Media(
                        url=url,
                        medium="image",
                        width=_int(a.get("width")),
                        height=_int(a.get("height")),
                        role="thumbnail",
                    )
                )
        elif local == "group":
            for child in el:
                ckey, clocal = names(child.tag)
                _media(child, ckey, clocal, base, names, out)
    elif (key == "" and local == "enclosure") or (
        key == "atom" and local == "link" and a.get("rel") == "enclosure"
    ):
        url = _abs(a.get("url") or a.get("href"), base)
        if url:
            mime = a.get("type") or None
            out.append(Media(url=url, medium=_medium(None, mime), type=mime, role="enclosure"))
    elif key == "itunes" and local == "image":
        url = _abs(a.get("href"), base)
        if url:
            out.append(Media(url=url, medium="image", role="image"))


def _item_media(
    fields: dict[tuple[str, str], list[etree._Element]], base: str, names: _Names
) -> list[Media]:
    out: list[Media] = []
    for (key, local), els in fields.items():
        if key in ("media", "itunes") or local in ("enclosure", "link"):
            for el in els:
                _media(el, key, local, base, names, out)
    return out


def _media_text(fields: dict[tuple[str, str], list[etree._Element]], names: _Names, what: str):
    """media:title / media:description of an item or its media:group (YouTube, Rutube)."""
    for el in fields.get(("media", what), ()):
        return el.text
    for group in fields.get(("media", "group"), ()):
        for child in group:
            if names(child.tag) == ("media", what):
                return child.text
    return None


# --- RSS 0.9x / 1.0 (RDF) / 2.0 ----------------------------------------------------------


def _first(fields: dict[tuple[str, str], list[etree._Element]], *keys: tuple[str, str]):
    for k in keys:
        for el in fields.get(k, ()):
            return el
    return None


def _first_text(fields: dict[tuple[str, str], list[etree._Element]], *keys: tuple[str, str]):
    for k in keys:
        for el in fields.get(k, ()):
            text = (el.text or "").strip()
            if text:
                return text
    return None


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
    has_xml_base = b"xml:base" in body
    cfields = _children(channel, names) if channel is not None else {}
    lang = _lang(
        _first_text(cfields, ("", "language"), ("dc", "language"))
        or (channel.get(_XML_LANG) if channel is not None else None)
        or root.get(_XML_LANG)
    )
    channel_link = _bare_host_link(_first_text(cfields, ("", "link")))
    default_base = _abs(channel_link, url) or url
    items = [c for c in root if names(c.tag) == ("", "item")]
    if channel is not None:
        items[:0] = cfields.get(("", "item"), [])
    return [_rss_item(item, names, default_base, has_xml_base, lang) for item in items]


def _rss_item(
    item: etree._Element, names: _Names, default_base: str, has_xml_base: bool, lang: str | None
) -> Post:
    f = _children(item, names)
    base = _base_of(item, default_base, has_xml_base)
    title_el = _first(f, ("", "title"), ("dc", "title"))
    raw_title = _raw(title_el) if title_el is not None else _media_text(f, names, "title")
    title = _title(raw_title, None if title_el is None or len(title_el) == 0 else True)

    guid_el = _first(f, ("", "guid"))
    guid = (guid_el.text or "").strip() if guid_el is not None else ""
    link = _abs(_first_text(f, ("", "link")), base)
    if not link:
        alt = next(
            (e for e in f.get(("atom", "link"), ()) if e.get("rel", "alternate") == "alternate"),
            None,
        )
        if alt is not None:
            link = _abs(alt.get("href"), base)
    permalink = guid_el is not None and guid_el.get("isPermaLink", "true").lower() != "false"
    if not link and permalink and guid.startswith(("http://", "https://")):
        link = guid

    candidates = [
        (_raw(el), True)
        for k in (("", "description"), ("content", "encoded"), ("yandex", "full-text"))
        for el in f.get(k, ())
    ]
    candidates += [(_raw(el), True) for (_, local), els in f.items() if local == "full-text"
                   for el in els]  # fmt: skip
    if not any(c[0].strip() for c in candidates):
        media_desc = _media_text(f, names, "description")
        if media_desc:
            candidates = [(media_desc, False)]
    text = _fullest(candidates)

    author = _one_line(_first_text(f, ("dc", "creator"), ("itunes", "author")))
    if not author:
        author = _author_name(_first_text(f, ("", "author")))
    if not author:
        name_el = next((n for a in f.get(("atom", "author"), ()) for n in a
                        if names(n.tag) == ("atom", "name")), None)  # fmt: skip
        author = _one_line(name_el.text) if name_el is not None else None

    published = None
    for k in _RSS_DATES:
        for el in f.get(k, ()):
            published = _date(el.text)
            if published:
                break
        if published:
            break

    ident = guid or item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about")
    return _post(
        ident=ident,
        link=link,
        title=title,
        text=text,
        author=author,
        published_at=published,
        lang=_lang(_first_text(f, ("dc", "language"))) or lang,
        media=_item_media(f, base, names),
    )


# --- Atom 0.3 / 1.0 ----------------------------------------------------------------------


def _atom_content(el: etree._Element) -> tuple[str, bool]:
    """(raw content, is HTML) of an Atom text construct, honouring type= (and 0.3's mode=)."""
    kind = (el.get("type") or "text").strip().lower()
    if len(el) or kind in _XHTML_TYPES or el.get("mode") == "xml" and kind != "text":
        return _raw(el), True
    if kind in _HTML_TYPES or el.get("mode") == "escaped":
        return el.text or "", True
    return el.text or "", False


def _atom_link(
    links: list[etree._Element], base: str, has_xml_base: bool, rel: str = "alternate"
) -> str | None:
    best: etree._Element | None = None
    for el in links:
        if el.get("rel", "alternate") != rel or not el.get("href"):
            continue
        if best is None or (el.get("type") or "text/html").startswith("text/html"):
            best = el
            if (el.get("type") or "text/html").startswith("text/html"):
                break
    if best is None:
        return None
    return _abs(best.get("href"), _base_of(best, base, has_xml_base))


def _atom_author(fields: dict[tuple[str, str], list[etree._Element]], names: _Names):
    for author in fields.get(("atom", "author"), ()):
        for child in author:
            if names(child.tag) == ("atom", "name") and (child.text or "").strip():
                return _one_line(child.text)
    return None


_ATOM_DATES = (
    ("atom", "published"),
    ("atom", "issued"),
    ("atom", "created"),
    ("atom", "updated"),
    ("atom", "modified"),
    ("dc", "date"),
)


def _atom_posts(root: etree._Element, url: str, body: bytes) -> list[Post]:
    names = _Names({etree.QName(root).namespace}, "atom")
    has_xml_base = b"xml:base" in body
    ffields = _children(root, names)
    feed_link = _atom_link(ffields.get(("atom", "link"), []), url, has_xml_base)
    default_base = feed_link or url
    feed_author = _atom_author(ffields, names)
    feed_lang = _lang(root.get(_XML_LANG))
    posts = []
    for entry in ffields.get(("atom", "entry"), ()):
        f = _children(entry, names)
        base = _base_of(entry, default_base, has_xml_base)
        title_el = _first(f, ("atom", "title"))
        if title_el is not None:
            title = _title(*_atom_content(title_el))
        else:
            title = _title(_media_text(f, names, "title"), False)
        candidates = [
            _atom_content(el)
            for k in (("atom", "content"), ("atom", "summary"))
            for el in f.get(k, ())
            if not el.get("src")
        ]
        candidates += [(_raw(el), True) for el in f.get(("content", "encoded"), ())]
        if not any(c[0].strip() for c in candidates):
            media_desc = _media_text(f, names, "description")
            candidates = [(media_desc, False)] if media_desc else []
        published = None
        for k in _ATOM_DATES:
            for el in f.get(k, ()):
                published = _date(el.text)
                if published:
                    break
            if published:
                break
        posts.append(
            _post(
                ident=_first_text(f, ("atom", "id")),
                link=_atom_link(f.get(("atom", "link"), []), base, has_xml_base),
                title=title,
                text=_fullest(candidates),
                author=_atom_author(f, names) or feed_author,
                published_at=published,
                lang=_lang(entry.get(_XML_LANG)) or feed_lang,
                media=_item_media(f, base, names),
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
    authors = obj.get("authors")
    candidates = authors if isinstance(authors, list) else []
    candidates = [*candidates, obj.get("author")]
    for a in candidates:
        if isinstance(a, dict) and _s(a.get("name")):
            return _one_line(_s(a.get("name")))
    return None


def _json_posts(body: bytes, url: str) -> list[Post]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"not a JSON Feed: invalid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ParseError("not a JSON Feed: no `items` list")
    base = _abs(_s(data.get("home_page_url")), url) or url
    feed_lang = _lang(_s(data.get("language")))
    feed_author = _json_author(data)
    posts = []
    for item in data["items"]:
        if not isinstance(item, dict):
            continue
        link = _abs(_s(item.get("url")), base) or _abs(_s(item.get("external_url")), base)
        raw_title = _s(item.get("title"))
        candidates = [(_s(item.get("content_html")) or "", True)]
        candidates += [(_s(item.get(k)) or "", False) for k in ("content_text", "summary")]
        media: list[Media] = []
        for key, role in (("image", "image"), ("banner_image", "banner")):
            image = _abs(_s(item.get(key)), base)
            if image:
                media.append(Media(url=image, medium="image", role=role))
        attachments = item.get("attachments")
        for att in attachments if isinstance(attachments, list) else ():
            att_url = _abs(_s(att.get("url")), base) if isinstance(att, dict) else None
            if att_url:
                mime = _s(att.get("mime_type"))
                media.append(
                    Media(
                        url=att_url,
                        medium=_medium(None, mime),
                        type=mime,
                        duration=_float(att.get("duration_in_seconds")),
                        role="enclosure",
                    )
                )
        posts.append(
            _post(
                ident=_s(item.get("id")),
                link=link,
                title=_title(raw_title, None),
                text=_fullest(candidates),
                author=_json_author(item) or feed_author,
                published_at=_date(_s(item.get("date_published")))
                or _date(_s(item.get("date_modified"))),
                lang=_lang(_s(item.get("language"))) or feed_lang,
                media=media,
            )
        )
    return posts


# --- the lenient path ----------------------------------------------------------------------


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


def _fp_text(detail: Any, value: str | None) -> tuple[str, bool]:
    kind = (getattr(detail, "get", lambda *_: None)("type") or "text/html").lower()
    return value or "", kind != "text/plain"


def _feedparser_posts(
    body: bytes, url: str, content_type: str | None, root_name: str | None
) -> list[Post]:
    check_safe(body)
    import feedparser

    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A file object, never bytes: feedparser opens a bytes "document" as a file name if one
    # exists (a body of b"/etc/passwd" would be read from disk).
    try:
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
    base = url
    posts = []
    for e in d.entries:
        title = e.get("title")
        link = _abs(e.get("link"), base)
        candidates = [_fp_text(c, c.get("value")) for c in e.get("content", [])]
        if e.get("summary"):
            candidates.append(_fp_text(e.get("summary_detail"), e.get("summary")))
        author_detail = e.get("author_detail") or {}
        published = _date(e.get("published")) or _date(e.get("updated"))
        if not published:
            published = _struct_iso(e.get("published_parsed") or e.get("updated_parsed"))
        posts.append(
            _post(
                ident=e.get("id"),
                link=link,
                title=_title(title, _fp_text(e.get("title_detail"), title)[1] if title else False),
                text=_fullest(candidates),
                author=_one_line(author_detail.get("name") or e.get("author")),
                published_at=published,
                lang=feed_lang,
                media=list(_fp_media(e, base)),
            )
        )
    return posts


def _fp_media(e: Any, base: str) -> Iterable[Media]:
    def make(url: str | None, role: str, **kw: Any) -> Media | None:
        url = _abs(url, base)
        return Media(url=url, role=role, **kw) if url else None

    found = []
    for m in e.get("media_content", []):
        found.append(
            make(
                m.get("url"),
                "content",
                medium=_medium(m.get("medium"), m.get("type")),
                type=m.get("type"),
                width=_int(m.get("width")),
                height=_int(m.get("height")),
                duration=_float(m.get("duration")),
            )
        )
    for m in e.get("media_thumbnail", []):
        found.append(
            make(
                m.get("url"),
                "thumbnail",
                medium="image",
                width=_int(m.get("width")),
                height=_int(m.get("height")),
            )
        )
    for m in e.get("enclosures", []):
        mime = m.get("type") or None
        found.append(make(m.get("href"), "enclosure", medium=_medium(None, mime), type=mime))
    return [m for m in found if m is not None]
