"""The lenient path: documents lxml rejects, read into posts by feedparser (imported lazily)."""

from __future__ import annotations

import io
from typing import Any

from monitor.errors import ParseError
from monitor.feeds.common import (
    _abs,
    _date,
    _fullest,
    _lang,
    _one_line,
    _post,
    _struct_iso,
    _title,
)
from monitor.feeds.discovery import html_page_error
from monitor.feeds.media import enclosure, media_content, media_thumbnail
from monitor.models import Media, Post
from monitor.xmlsafe import check_safe

_SITEMAPS = ("urlset", "sitemapindex")


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
    found = [media_content(m, base) for m in e.get("media_content", [])]
    found += [media_thumbnail(m, base) for m in e.get("media_thumbnail", [])]
    found += [enclosure(m.get("href"), m.get("type"), base) for m in e.get("enclosures", [])]
    return [m for m in found if m is not None]
