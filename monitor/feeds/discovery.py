"""Pure: the feeds an HTML page names, for a feed URL that turns out to be a page."""

from __future__ import annotations

import re

from monitor.charset import decode_html
from monitor.text import absolute_url, base_url, clean_space

# The types a page's <link rel="alternate"> gives its feeds. Not application/json: WordPress
# names its REST API that way on every post, and that is not a feed of posts.
_FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
}
_HTML = re.compile(rb"<html|<!doctype html|<head[\s>]|<body[\s>]", re.I)
SHOWN = 3  # a page may name dozens (one per category); the error names the first few


def named_feeds(body: bytes, url: str, content_type: str | None = None) -> list[tuple[str, str]]:
    """(absolute URL, title or kind) of each feed the page at `url` links as an alternate."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode_html(body, content_type))
    base = base_url(tree, url)
    found: dict[str, str] = {}
    for node in tree.css("link[href][type]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        kind = _FEED_TYPES.get((node.attributes.get("type") or "").strip().lower())
        href = absolute_url(node.attributes.get("href"), base)
        if "alternate" not in rel or kind is None or href is None:
            continue
        if href.startswith(("http://", "https://")) and href != url:
            found.setdefault(href, clean_space(node.attributes.get("title") or "") or kind)
    return list(found.items())


def html_page_error(body: bytes, url: str, content_type: str | None = None) -> str | None:
    """What to tell a user whose feed URL answered with an HTML page: the feeds it names.

    None when `body` is not a page at all. Fragments count: a page cut short, or served
    without its <html> and <head>, still names its feeds.
    """
    feeds = named_feeds(body, url, content_type)
    if not feeds:
        if _HTML.search(body[:2048]):
            return "not a feed: the response is an HTML page"
        return None
    shown = ", ".join(f"{href} ({title})" for href, title in feeds[:SHOWN])
    more = f" and {len(feeds) - SHOWN} more" if len(feeds) > SHOWN else ""
    return (
        "not a feed: the response is an HTML page; set url to one of the feeds it names: "
        f"{shown}{more}"
    )
