"""The `x` source's Nitter backend: an instance's RSS of one account, read back into X posts."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from monitor.errors import ParseError
from monitor.http import FetchError
from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext
from monitor.sources.feed import parse_feed
from monitor.text import clean_space, html_to_text
from monitor.xmlsafe import parse_xml

if TYPE_CHECKING:
    from lxml.html import HtmlElement

    from monitor.sources.x import XSource

_DC = "{http://purl.org/dc/elements/1.1/}"
_RT_BY = re.compile(r"^RT by @(\w+): ")
_REPLY_TO = re.compile(r"^R to @(\w+): ")
_STATUS_PATH = re.compile(r"^/([^/]+)/status/(\d+)")
_SCHEME = re.compile(r"^https?://(?:www\.)?", re.I)
_PROXIED = ("/pic/orig/", "/pic/", "/gif/")  # how Nitter serves pbs/video.twimg.com through itself


@dataclass
class _Item:
    """What parse_feed turns into plain text, read from the item as Nitter wrote it."""

    link: str | None
    description: str | None


@dataclass
class _Body:
    text: str | None = None
    media: list[Media] = field(default_factory=list)
    video: bool = False
    quoted_url: str | None = None


def parse_nitter(body: bytes, url: str, handle: str, content_type: str | None = None) -> list[Post]:
    """Posts of a Nitter `/<handle>/rss` document fetched from `url`; ParseError otherwise."""
    _refuse_html(body, content_type)
    host = (urlsplit(url).hostname or "").lower()
    channel_title, items = _raw_items(body)
    if channel_title and "whitelist" in channel_title.lower():
        raise ParseError(
            f"the Nitter instance refuses this RSS reader ({channel_title!r}): "
            "use another instance or a self-hosted one"
        )
    posts = parse_feed(body, url, content_type)
    if not posts:
        raise ParseError(
            f"the Nitter feed for @{handle} has no posts: instances answer an empty feed when "
            "X rate-limits them; try again later or use another instance"
        )
    by_link = {i.link: i for i in items or () if i.link}
    paired = items if items is not None and len(items) == len(posts) else None
    return [
        _post(p, paired[n] if paired else by_link.get(p.url or ""), handle, host)
        for n, p in enumerate(posts)
    ]


def _post(post: Post, item: _Item | None, handle: str, host: str) -> Post:
    title = post.title or ""
    extra: dict[str, Any] = {}
    if title.startswith("Pinned: "):
        extra["pinned"] = True
    reposted_by = None
    if m := _RT_BY.match(title):
        reposted_by = m.group(1)
    elif title.startswith("RT: "):  # Nitter before 2023 did not say who reposted
        reposted_by = handle
    if m := _REPLY_TO.match(title):
        extra["reply_to"] = m.group(1)
    path = urlsplit(post.url or "").path
    status = _STATUS_PATH.match(path)
    author = (post.author or "").strip().lstrip("@") or (status.group(1) if status else None)
    if not reposted_by and author and author.lower() != handle.lower():
        reposted_by = handle  # the timeline holds the account's posts and what it reposted
    if reposted_by:
        extra["reposted_by"] = reposted_by
    tweet_id = status.group(2) if status else None
    if tweet_id is None and post.external_id.isdigit():
        tweet_id = post.external_id  # guid isPermaLink="false": the bare id (Nitter since 2025)
    body = _description(item.description, host) if item and item.description else _Body()
    if body.quoted_url:
        extra["quoted_url"] = body.quoted_url
        if quoted := _STATUS_PATH.match(urlsplit(body.quoted_url).path):
            extra["quoted_id"] = quoted.group(2)
    if tweet_id:
        extra["id"] = tweet_id
    return Post(
        external_id=tweet_id or post.external_id,
        url=f"https://x.com/{author or 'i'}/status/{tweet_id}" if tweet_id else post.url,
        title=None,
        text=body.text or post.text,
        author=f"@{author}" if author else None,
        kind="video" if body.video else "post",
        published_at=post.published_at,
        lang=None,  # Nitter writes en-us for every account, whatever the language
        media=tuple(body.media) or post.media,
        extra=extra,
    )


def _raw_items(body: bytes) -> tuple[str | None, list[_Item] | None]:
    """(channel title, items) as written; (None, None) when only a lenient parser can read it."""
    try:
        root = parse_xml(body)
    except ParseError:
        return None, None
    channel = root.find("channel")
    if channel is None:
        return None, None
    items = [
        _Item((i.findtext("link") or "").strip() or None, i.findtext("description"))
        for i in channel.iter("item")
    ]
    return (channel.findtext("title") or "").strip() or None, items


def _description(html: str, host: str) -> _Body:
    """Text, media and quoted post of an item's description HTML, Nitter's own markup."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.LxmlError, ValueError):
        return _Body(text=html_to_text(html) or None)
    out = _Body()
    for quote in list(root.iter("blockquote")):
        links = [a.get("href") for a in quote.iter("a") if a.get("href")]
        if links and out.quoted_url is None:
            out.quoted_url = _x_url(links[-1], host)
        _drop(quote)  # the quoted post's text and pictures are not this post's
    for hr in list(root.iter("hr")):
        _drop(hr)
    for el in root.iter("img", "video"):
        if el.tag == "video":
            # A GIF: a silent loop, kept as video media; the post is no video to transcribe.
            for source in el.iter("source"):
                if source.get("src"):
                    out.media.append(
                        Media(
                            _media_url(source.get("src"), host),
                            "video",
                            source.get("type") or None,
                            role="content",
                        )
                    )
            if el.get("poster"):
                out.media.append(
                    Media(_media_url(el.get("poster"), host), "image", role="thumbnail")
                )
            continue
        src = el.get("src")
        if not src:
            continue
        link = next((a for a in el.iterancestors("a")), None)
        if link is not None and "video" in link.text_content().lower():
            out.video = True  # Nitter shows a video as its thumbnail linking to the status
            out.media.append(Media(_media_url(src, host), "image", role="thumbnail"))
        else:
            out.media.append(Media(_media_url(src, host), "image", role="content"))
    paragraph = root.find("p")
    if paragraph is not None:
        for a in paragraph.iter("a"):
            _expand_link(a, host)
        out.text = html_to_text(lxml.html.tostring(paragraph, encoding="unicode")) or None
    return out


def _expand_link(a: HtmlElement, host: str) -> None:
    """Show a link's full target where Nitter shows it shortened (as X does: example.com/pa…)."""
    href = a.get("href")
    shown = a.text_content().strip()
    if not href or not shown or shown[0] in "@#$":
        return
    target = _x_url(href, host)
    stem = _SCHEME.sub("", shown).rstrip("…").removesuffix("...")
    if stem and _SCHEME.sub("", target).lower().startswith(stem.lower()):
        for child in list(a):
            a.remove(child)
        a.text = target


def _drop(el: HtmlElement) -> None:
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _x_url(href: str, host: str) -> str:
    """A link to the instance (a status, a profile) as the x.com link it stands for."""
    parts = urlsplit(href)
    if (parts.hostname or "").lower() != host or not host:
        return href
    path = parts.path
    return f"https://x.com{path}" + (f"?{parts.query}" if parts.query else "")


def _media_url(src: str, host: str) -> str:
    """The twimg.com original of a picture or GIF that the instance proxies under /pic/."""
    parts = urlsplit(src)
    if (parts.hostname or "").lower() != host:
        return src
    path = parts.path
    for prefix in _PROXIED:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            break
    else:
        return src
    if rest.startswith("enc/"):  # instances with base64Media on
        try:
            padded = rest[4:] + "=" * (-len(rest[4:]) % 4)
            rest = base64.urlsafe_b64decode(padded).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return src
    rest = unquote(rest + (f"?{parts.query}" if parts.query else ""))
    if rest.startswith(("http://", "https://")):
        return rest
    if rest.startswith(("pbs.twimg.com/", "video.twimg.com/")):
        return f"https://{rest}"
    return f"https://pbs.twimg.com/{rest}"


def _refuse_html(body: bytes, content_type: str | None) -> None:
    """Nitter answers 200 with an HTML page when it is rate limited or blocks the client."""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    mime = (content_type or "").split(";")[0].strip().lower()
    html = head.startswith((b"<!doctype html", b"<html")) or (
        mime == "text/html" and not head.startswith((b"<?xml", b"<rss"))
    )
    if not html:
        return
    said = _html_error(body)
    raise ParseError(
        "the Nitter instance answered with an HTML page, not the RSS feed"
        + (f" ({said!r})" if said else "")
        + ": it is probably rate limited or blocking RSS readers; try again later or use "
        "another instance"
    )


def _html_error(body: bytes) -> str | None:
    import lxml.html
    from lxml import etree

    try:
        doc = lxml.html.document_fromstring(body)
    except (etree.LxmlError, ValueError):
        return None
    for el in doc.find_class("error-panel"):
        text = clean_space(" ".join(el.itertext()))
        if text:
            return text[:200]
    title = doc.findtext(".//title")
    return clean_space(title)[:200] if title and title.strip() else None


async def collect_nitter(cfg: XSource, ctx: FetchContext) -> Collected:
    """Read `{instance}/{handle}/rss` and keep what the source's filters allow."""
    url = f"{(cfg.instance or '').rstrip('/')}/{cfg.username}/rss"
    try:
        resp = await ctx.http.get(url, state=ctx.state, timeout=ctx.timeout)
    except FetchError as e:
        if e.status == 404:
            raise FetchError(
                f"Nitter has no feed for @{cfg.username} (HTTP 404): check `handle`, "
                "and that the instance serves RSS",
                status=404,
            ) from None
        raise FetchError(f"Nitter {url}: {e}", e.status, e.retry_after) from None
    if resp.not_modified:
        return Collected([], http_status=304, not_modified=True)
    posts = parse_nitter(resp.body, resp.url, cfg.username, resp.headers.get("content-type"))
    posts = [
        p
        for p in posts
        if (cfg.include_replies or "reply_to" not in p.extra)
        and (cfg.include_retweets or "reposted_by" not in p.extra)
    ]
    return Collected(posts, http_status=resp.status)
