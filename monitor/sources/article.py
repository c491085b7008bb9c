"""Pure: what an article page says of itself in its head — title, summary, date, language."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.text import absolute_url, clean_space

# Where pages put their publication time, most specific first: Open Graph, then the common
# meta names of CMSs and of Dublin Core.
_DATE_META = ("article:published_time", "og:article:published_time", "datePublished",
              "pubdate", "publishdate", "date", "dc.date.issued", "DC.date.issued", "dc.date",
              "sailthru.date", "parsely-pub-date")  # fmt: skip


@dataclass(frozen=True)
class ArticleHead:
    title: str | None
    summary: str | None
    published_at: str | None  # ISO 8601 UTC
    lang: str | None
    image: str | None


def read_article_head(body: bytes, url: str, content_type: str | None = None) -> ArticleHead:
    """The title, summary, publication time, language and picture an article page gives."""
    from selectolax.lexbor import LexborHTMLParser

    from monitor.charset import decode_html
    from monitor.sources.page import parse_human_date

    tree = LexborHTMLParser(decode_html(body, content_type))
    metas: dict[str, str] = {}
    for node in tree.css("meta[content]"):
        key = node.attributes.get("property") or node.attributes.get("name") or ""
        content = clean_space(node.attributes.get("content") or "")
        if key and content:
            metas.setdefault(key.strip().lower(), content)

    def meta(*keys: str) -> str | None:
        return next((metas[k.lower()] for k in keys if metas.get(k.lower())), None)

    title = meta("og:title", "twitter:title")
    if title is None:
        node = tree.css_first("title") or tree.css_first("h1")
        title = clean_space(node.text()) if node is not None else None
    published = parse_human_date(meta(*_DATE_META)) or _ld_published(tree)
    if published is None:
        node = tree.css_first("time[datetime]")
        published = parse_human_date(node.attributes.get("datetime")) if node else None
    html = tree.css_first("html[lang]")
    lang = clean_space(html.attributes.get("lang") or "") if html is not None else ""
    return ArticleHead(
        title=title or None,
        summary=meta("og:description", "description", "twitter:description"),
        published_at=published,
        lang=lang or None,
        image=absolute_url(meta("og:image", "twitter:image"), url),
    )


def _ld_published(tree: Any) -> str | None:
    """datePublished from the page's JSON-LD (schema.org NewsArticle), where many CMSs put it."""
    from monitor.sources.page import parse_human_date

    for node in tree.css('script[type="application/ld+json"]'):
        try:
            data = json.loads(node.text())
        except ValueError:
            continue
        found = _find(data, "datePublished")
        if isinstance(found, str) and (when := parse_human_date(found)):
            return when
    return None


def _find(data: Any, key: str, depth: int = 0) -> Any:
    """The first value of `key` in nested JSON (objects, arrays, @graph), not too deep."""
    if depth > 6:
        return None
    if isinstance(data, dict):
        if key in data:
            return data[key]
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = _find(item, key, depth + 1)
            if found is not None:
                return found
    return None
