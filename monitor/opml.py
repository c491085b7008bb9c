"""Pure: OPML subscription lists read into feed outlines, and sources written back as OPML."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

# Attributes of our own, as Miniflux (miniflux:) and FreshRSS (frss:) keep theirs: the source's
# id and type, so a list exported by one monitor comes back with the same ids in another.
NAMESPACE = "https://github.com/outlet-monitor/outlet-monitor/opml"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


class OPMLError(ValueError):
    """A file that is not an OPML subscription list, or one refused as hostile."""


@dataclass
class Outline:
    """One subscription of an OPML file: its feed URL, title, folders and what it is."""

    url: str
    title: str = ""
    html_url: str | None = None
    tags: list[str] = field(default_factory=list)  # folder paths, "News/Europe"
    kind: str = "feed"  # or "sitemap" / "page" from our own export; else what skipped it
    id: str | None = None  # our own export's source id
    line: int | None = None


@dataclass
class Skipped:
    title: str
    url: str | None
    reason: str


def _attr(el: object, name: str) -> str:
    """An outline attribute by name, whatever its case (xmlurl, xmlURL are seen in the wild)."""
    attrib = el.attrib  # type: ignore[attr-defined]
    value = attrib.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in attrib.items() if str(k).lower() == lowered), "")
    return str(value).strip()


def _text(value: str) -> str:
    """An outline's title as a reader shows it: exports often HTML-escape it once more
    (`AT&amp;T` inside the attribute, `&#039;` from PHP), so entities left after XML are read."""
    value = " ".join(value.split())
    for _ in range(2):  # at most twice escaped in practice; never loop on hostile input
        if not _ENTITY.search(value):
            break
        value = html.unescape(value)
    return value


def parse_opml(body: bytes) -> tuple[list[Outline], list[Skipped]]:
    """The feed outlines of an OPML file in document order, and the outlines that are not feeds.

    Raises OPMLError for a file that is not OPML or is refused (entity declarations: XXE,
    billion laughs; absurd nesting), with the reason.
    """
    from monitor.errors import ParseError
    from monitor.xmlsafe import parse_xml

    try:
        root = parse_xml(body)
    except ParseError as e:
        raise OPMLError(str(e)) from None
    if _local(root.tag) != "opml":
        raise OPMLError(f"not an OPML file: the document is <{_local(root.tag)}>, not <opml>")
    body_el = next((c for c in root if _local(c.tag) == "body"), None)
    if body_el is None:
        raise OPMLError("not an OPML file: no <body>")
    found: list[Outline] = []
    skipped: list[Skipped] = []
    _walk(body_el, [], found, skipped)
    return found, skipped


def _local(tag: object) -> str:
    return str(tag).rpartition("}")[2] if isinstance(tag, str) else ""


def _walk(parent: object, folders: list[str], found: list[Outline], skipped: list[Skipped]) -> None:
    for el in parent:  # type: ignore[attr-defined]
        if _local(el.tag) != "outline":
            continue
        title = _text(_attr(el, "title") or _attr(el, "text"))
        url = _attr(el, "xmlUrl")
        own_type = el.get(f"{{{NAMESPACE}}}type")
        if not url and own_type in ("sitemap", "page"):
            url = _attr(el, "url")
        if not url:
            children = [c for c in el if _local(c.tag) == "outline"]
            if children:  # a folder (Miniflux, FreshRSS, Feedly, Inoreader: a category)
                _walk(el, [*folders, title] if title else folders, found, skipped)
            elif _attr(el, "type").lower() in ("link", "include") or _attr(el, "url"):
                skipped.append(Skipped(title, _attr(el, "url") or None, "a link, not a feed"))
            continue
        kind = own_type if own_type in ("feed", "sitemap", "page") else "feed"
        otype = _attr(el, "type").lower()
        if kind == "feed" and otype and otype not in ("rss", "atom", "json", "feed", "rdf"):
            # FreshRSS exports its web-scraping feeds as type="HTML+XPath": not a feed to fetch.
            skipped.append(Skipped(title, url, f'type="{_attr(el, "type")}" is not a feed'))
            continue
        # A folder path is one tag ("News/Europe"), as OPML 2.0 writes a category.
        tags = ["/".join(folders)] if folders else []
        for category in _attr(el, "category").split(","):
            category = category.strip().strip("/")
            if category and category not in tags:
                tags.append(category)
        own_id = el.get(f"{{{NAMESPACE}}}id")
        found.append(
            Outline(
                url=url,
                title=title,
                html_url=_attr(el, "htmlUrl") or None,
                tags=tags,
                kind=kind,
                id=own_id if own_id and _ID.match(own_id) else None,
                line=el.sourceline,
            )
        )


def same_feed(url: str) -> str:
    """A key under which two spellings of one feed URL are equal: scheme, host case, default
    port, a trailing slash and a fragment make no other feed (http:// and https:// neither)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = f":{parts.port}" if parts.port and parts.port not in (80, 443) else ""
    path = parts.path.rstrip("/") or ""
    return f"{host}{port}{path}" + (f"?{parts.query}" if parts.query else "")


def make_id(title: str, url: str, taken: Iterable[str]) -> str:
    """A source id from a title ("Le Monde – International" → le-monde-international), else
    from the URL's host when the title has no Latin letters; `-2`, `-3`... when taken."""
    taken = set(taken)
    base = _slug(title) or _slug(_host_words(url)) or "feed"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


# Latin letters that NFKD does not take apart into a base letter and an accent.
_LATIN = str.maketrans({"ı": "i", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE",
                        "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D"})  # fmt: skip
_MAX_ID = 40  # ids are typed in commands: a whole title of 90 characters is not an id


def _slug(text: str) -> str:
    text = re.sub(r"['’]", "", text.translate(_LATIN))  # "DW's" → dws, not dw-s
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > _MAX_ID:
        cut = slug[: _MAX_ID + 1]
        slug = cut[: cut.rfind("-")] if "-" in cut else slug[:_MAX_ID]
    return slug


def _host_words(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    return host.rsplit(".", 1)[0] if "." in host else host


@dataclass
class ExportEntry:
    id: str
    type: str
    url: str
    name: str | None = None
    tags: list[str] = field(default_factory=list)


def write_opml(entries: list[ExportEntry], title: str, created: str) -> str:
    """An OPML 2.0 document: each entry under the folder of its first tag (nested by "/"),
    feeds as `type="rss"` with `xmlUrl`, sitemaps and pages as links, other tags in `category`."""
    tree: dict[str, object] = {}  # folder name -> subtree; "" -> entries at this level

    for e in entries:
        node = tree
        for part in [p for p in (e.tags[0].split("/") if e.tags else []) if p]:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node.setdefault("", []).append(e)  # type: ignore[union-attr]

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<opml version="2.0" xmlns:monitor="{NAMESPACE}">',
        "  <head>",
        f"    <title>{html.escape(title, quote=False)}</title>",
        f"    <dateCreated>{html.escape(created, quote=False)}</dateCreated>",
        "  </head>",
        "  <body>",
    ]

    def emit(node: dict[str, object], depth: int) -> None:
        pad = "  " * depth
        for e in node.get("", []):  # type: ignore[union-attr]
            text = e.name or e.id
            attrs = [("text", text), ("title", text)]
            if e.type == "feed":
                attrs += [("type", "rss"), ("xmlUrl", e.url)]
            else:
                attrs += [("type", "link"), ("url", e.url)]
            if e.tags[1:]:  # the first tag is the folder the outline sits in
                attrs.append(("category", ",".join(f"/{t}" for t in e.tags[1:])))
            attrs += [("monitor:id", e.id), ("monitor:type", e.type)]
            rendered = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs)
            lines.append(f"{pad}<outline {rendered}/>")
        for name, child in node.items():
            if name == "":
                continue
            lines.append(f"{pad}<outline text={quoteattr(name)} title={quoteattr(name)}>")
            emit(child, depth + 1)  # type: ignore[arg-type]
            lines.append(f"{pad}</outline>")

    emit(tree, 2)
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)
