"""The lenient path: documents lxml rejects, read into posts by feedparser (imported lazily)."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

from monitor.errors import ParseError
from monitor.feeds.common import (
    _abs,
    _date,
    _FormerIds,
    _fullest,
    _lang,
    _person,
    _post,
    _site_base,
    _struct_iso,
    _title,
    _zone,
)
from monitor.feeds.discovery import html_page_error
from monitor.feeds.media import clock_seconds, enclosure, media_content, media_thumbnail
from monitor.models import Media, Post
from monitor.xmlsafe import check_safe

_SITEMAPS = ("urlset", "sitemapindex")
_WEB = ("http://", "https://")


def _feedparser_posts(
    body: bytes, url: str, content_type: str | None, root_name: str | None
) -> list[Post]:
    check_safe(body)
    import feedparser

    # No content-location: feedparser would resolve a relative guid against it as if it were
    # a link (`<guid>1000</guid>` → `https://host/feeds/1000`), so that one item had two ids
    # depending on which parser read it. Relative links are resolved below, against the base
    # the lxml path uses.
    headers = {"content-type": content_type} if content_type else {}
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
            if root_name in (None, "html"):
                page = html_page_error(body, url, content_type)
                if page is not None:
                    raise ParseError(page)
            if root_name in _SITEMAPS:
                raise ParseError(f'not a feed but a sitemap (<{root_name}>): use type = "sitemap"')
            if root_name:
                raise ParseError(f"not a feed: the root element is <{root_name}>")
            raise ParseError("not a feed: no RSS, Atom or JSON Feed structure found")
        if d.get("bozo"):
            raise ParseError(f"broken feed, no items could be read: {d.get('bozo_exception')}")
        return []
    feed = _Feed(
        former_ids=_FormerIds(url),
        base=_site_base(d.feed.get("link"), url),
        lang=_lang(d.feed.get("language")),
        # As on the lxml path: item times without a zone are in the zone of the feed's own.
        zone=_zone(dict.get(d.feed, "updated") or dict.get(d.feed, "published")),
        # Atom's feed-level author is every entry's default; RSS has no such rule.
        author=_fp_author(d.feed) if d.get("version", "").startswith("atom") else None,
        atom=d.get("version", "").startswith("atom"),
    )
    return [_feedparser_post(e, feed) for e in d.entries]


@dataclass(frozen=True, slots=True)
class _Feed:
    former_ids: _FormerIds
    base: str
    lang: str | None
    zone: str | None
    author: str | None
    atom: bool


def _fp_is_html(detail: dict[str, Any] | None) -> bool:
    return ((detail or {}).get("type") or "text/html").lower() != "text/plain"


def _fp_author(e: Any) -> str | None:
    # The first author, as the lxml path reads it: `author_detail` is feedparser's last.
    for person in e.get("authors") or ():
        if isinstance(person, dict) and (name := _person(person.get("name"))):
            return name
    return _person((e.get("author_detail") or {}).get("name") or e.get("author"))


def _fp_link(e: Any) -> str | None:
    """The entry's own first alternate link, as the lxml path reads it.

    Not `e.link`: feedparser keeps the last <link> it met, and Yandex feeds nest the links
    of related stories inside the item (<yandex:related><link>...).
    """
    alternates = [
        link
        for link in e.get("links") or ()
        if link.get("rel", "alternate") == "alternate" and link.get("href")
    ]
    html = (x for x in alternates if (x.get("type") or "text/html").startswith("text/html"))
    link = next(html, alternates[0] if alternates else None)
    href = link["href"] if link is not None else e.get("link")
    if href and e.get("guidislink") and href == e.get("id") and not href.startswith(_WEB):
        return None  # a guid such as "1000" is an id, not a link (as on the lxml path)
    return href


def _fp_bodies(e: Any, is_atom: bool) -> list[tuple[str, bool]]:
    content = e.get("content", [])
    # In RSS, feedparser files media:description under `content` as text/plain (beside the
    # <description> in `summary`): the lxml path reads it only when there is nothing else.
    side = [c for c in content if not is_atom and not _fp_is_html(c)]
    bodies = [(c.get("value") or "", _fp_is_html(c)) for c in content if c not in side]
    if e.get("summary"):
        bodies.append((e["summary"], _fp_is_html(e.get("summary_detail"))))
    # Yandex's <yandex:full-text> and ukr.net's <full-text>: the whole article.
    bodies += [(v, True) for k, v in e.items() if k.endswith("full-text") and isinstance(v, str)]
    if not any(raw.strip() for raw, _ in bodies):
        bodies = [(c.get("value") or "", False) for c in side]
    return bodies


def _feedparser_post(e: Any, feed: _Feed) -> Post:
    # dict.get, not e.get: feedparser's own get() maps a missing `updated` onto `published`
    # with a DeprecationWarning.
    published = _date(dict.get(e, "published"), feed.zone) or _date(
        dict.get(e, "updated"), feed.zone
    )
    published = published or _struct_iso(
        dict.get(e, "published_parsed") or dict.get(e, "updated_parsed")
    )
    return _post(
        ident=e.get("id"),
        link=_abs(_fp_link(e), feed.base),
        title=_title(e.get("title"), _fp_is_html(e.get("title_detail"))),
        text=_fullest(_fp_bodies(e, feed.atom)),
        author=_fp_author(e) or feed.author,
        published_at=published,
        lang=feed.lang,
        media=_feedparser_media(e, feed.base),
        former_ids=feed.former_ids(e.get("id")),
    )


def _feedparser_media(e: Any, base: str) -> list[Media]:
    found = [media_content(m, base) for m in e.get("media_content", [])]
    found += [media_thumbnail(m, base) for m in e.get("media_thumbnail", [])]
    found += [enclosure(m.get("href"), m.get("type"), base) for m in e.get("enclosures", [])]
    if (duration := clock_seconds(e.get("itunes_duration"))) is not None:
        found = [
            replace(m, duration=duration)
            if m is not None and m.role == "enclosure" and m.duration is None
            else m
            for m in found
        ]
    image = e.get("image")  # itunes:image, as an href or as the element's text
    href = image.get("href") if isinstance(image, dict) else None
    if href and (url := _abs(href, base)):
        found.append(Media(url=url, medium="image", role="image"))
    return [m for m in found if m is not None]
