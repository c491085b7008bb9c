"""The `telegram` source: a public channel read from its `t.me/s/<channel>` web preview."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, ClassVar

from monitor.charset import decode_html
from monitor.errors import ParseError
from monitor.models import Kind, Media, Post
from monitor.sources.base import Collected, FetchContext, PageBudget, SourceConfig
from monitor.text import absolute_url, clean_space, html_to_text, parse_date

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

# Public usernames: letters, digits and underscores, starting with a letter; 4-character
# names exist (auctioned ones), 5 is the usual minimum, 32 the maximum.
_CHANNEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
MAX_PAGES = 50  # a backfill stops here whatever `backfill` says: one preview page is ~20 messages


@dataclass(frozen=True, kw_only=True)
class TelegramSource(SourceConfig):
    """`type = "telegram"`: a public channel, read without an account or a bot token."""

    type_name: ClassVar[str] = "telegram"
    channel: str  # the public name, as in t.me/<channel>
    base_url: str = "https://t.me"
    backfill: int = 50  # messages read on the first fetch (and at most per catch-up later)

    def validate(self) -> list[str]:
        problems = []
        if not _CHANNEL.match(self.channel):
            hint = self.channel.strip().removeprefix("@").rsplit("/", 1)[-1]
            problems.append(
                f"channel: {self.channel!r} is not a public channel name (letters, digits and _, "
                f"4-32 characters, starting with a letter)"
                + (f"; did you mean {hint!r}?" if _CHANNEL.match(hint) else "")
            )
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url: must be an http(s) URL, got {self.base_url!r}")
        if not 1 <= self.backfill <= 1000:
            problems.append("backfill: must be between 1 and 1000")
        return problems

    def describe(self) -> str:
        return f"{self.base_url.rstrip('/')}/s/{self.channel}"

    def page_url(self, before: int | None = None) -> str:
        url = f"{self.base_url.rstrip('/')}/s/{self.channel}"
        return f"{url}?before={before}" if before is not None else url

    async def collect(self, ctx: FetchContext) -> Collected:
        """The newest page, and older pages with `?before=` until the backfill is read (first
        fetch) or the newest message seen last time is reached (later fetches)."""
        known = ctx.state.get("channel") == self.channel.lower() and "newest" in ctx.state
        newest: int | None = ctx.state["newest"] if known else None
        found: dict[int, Post] = {}
        before: int | None = None
        status: int | None = None
        for _ in PageBudget(ctx, MAX_PAGES):
            resp = await ctx.http.get(self.page_url(before), timeout=ctx.timeout)
            status = resp.status
            posts, oldest = parse_preview(resp.body, resp.url, resp.headers.get("content-type"))
            for post in posts:
                found.setdefault(message_id(post), post)
            if oldest is None or (before is not None and oldest >= before):
                break  # the start of the channel: nothing older to ask for
            if newest is not None and oldest <= newest:
                break  # back to what the last fetch saw
            if len(found) >= self.backfill:
                if newest is not None:
                    ctx.log.append(
                        f"{self.backfill} or more new messages since the last fetch; "
                        f"kept the newest {self.backfill}"
                    )
                break
            before = oldest
        ids = sorted(found, reverse=True)
        if newest is None:
            keep = ids[: self.backfill]
            floor = keep[-1] if keep else 0
        else:
            floor = ctx.state.get("floor", 0)
            fresh = [i for i in ids if i > newest]
            # Known messages come back too, so an edit is seen; older ones never (they were
            # left out of the backfill on purpose).
            keep = fresh[: self.backfill] + [i for i in ids if floor <= i <= newest]
        ctx.state.clear()
        ctx.state.update(
            channel=self.channel.lower(),
            newest=max([*keep, newest or 0]),
            floor=floor,
        )
        return Collected([found[i] for i in sorted(keep)], http_status=status)


def message_id(post: Post) -> int:
    return int(post.external_id.rsplit("/", 1)[1])


# --- parsing --------------------------------------------------------------------------------


def parse_preview(
    body: bytes, url: str, content_type: str | None = None
) -> tuple[list[Post], int | None]:
    """The messages of a `t.me/s/<channel>` page (or a fragment of one) in page order, and the
    lowest message id on it — the `?before=` cursor for the page of older messages."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode_html(body, content_type))
    nodes = [n for n in tree.css(".tgme_widget_message[data-post]") if _id_of(n) is not None]
    if not nodes:
        if tree.css_first(".tgme_channel_history") is not None:
            return [], None  # a channel with no messages (yet)
        raise ParseError(
            f"{url}: no channel messages on the page — is the channel public, with its web "
            "preview enabled? (t.me sends private and unknown channels to a page without them)"
        )
    page_title = _channel_title(tree)
    posts = [_message(node, url, page_title) for node in nodes]
    return posts, min(message_id(p) for p in posts)


def _id_of(node: LexborNode) -> tuple[str, int] | None:
    channel, _, number = (node.attributes.get("data-post") or "").partition("/")
    return (channel, int(number)) if channel and number.isdigit() else None


def _channel_title(tree: Any) -> str | None:
    for selector in (".tgme_channel_info_header_title", ".tgme_header_title"):
        node = tree.css_first(selector)
        if node is not None and node.text(strip=True):
            return clean_space(node.text())
    meta = tree.css_first('meta[property="og:title"]')
    return (meta.attributes.get("content") or None) if meta is not None else None


def _message(node: LexborNode, page_url: str, page_title: str | None) -> Post:
    ident = _id_of(node)
    assert ident is not None
    channel, number = ident
    own = _Own(node)
    date_link = own.first(".tgme_widget_message_date")
    href = date_link.attributes.get("href") if date_link is not None else None
    url = absolute_url(href, page_url) or f"https://t.me/{channel}/{number}"
    time_node = own.first(".tgme_widget_message_date time[datetime]") or own.first("time[datetime]")
    extra: dict[str, Any] = {}

    title = _text(own.first(".tgme_widget_message_owner_name")) or page_title or channel
    signature = _text(own.first(".tgme_widget_message_from_author"))
    forwarded = own.first(".tgme_widget_message_forwarded_from_name")
    notes = []
    if signature:
        extra["signature"] = signature
        notes.append(f"by {signature}")
    if forwarded is not None:
        name = _text(forwarded)
        link = absolute_url(forwarded.attributes.get("href"), page_url)
        extra["forwarded_from"] = {k: v for k, v in (("name", name), ("url", link)) if v}
        notes.append(f"forwarded from {name}")
    # The channel stays first in `author` (so `author:` finds all of its messages) and whoever
    # wrote or first posted the message follows it, both searchable.
    author = f"{title} ({'; '.join(notes)})" if notes else title

    text_node = own.first(".tgme_widget_message_text")
    text = _rich_text(text_node)
    if text_node is not None:
        links = _links(text_node, page_url)
        if links:
            extra["links"] = links
    poll = _poll(own)
    if poll:
        extra["poll"] = poll
        # A poll's question and options are what it says: searchable like text.
        lines = [poll["question"], *(f"- {o['text']}" for o in poll["options"])]
        text = "\n\n".join(t for t in (text, "\n".join(lines)) if t)

    media = _media(own, page_url)
    # The message's own video, not one in a link preview, makes it a video post.
    kind: Kind = "video" if any(m.medium == "video" for m in media) else "post"
    preview = own.first(".tgme_widget_message_link_preview")
    if preview is not None:
        card, card_media = _link_preview(preview, page_url)
        extra["link_preview"] = card
        media += card_media
    reply = own.first(".tgme_widget_message_reply")
    if reply is not None:
        extra["reply_to"] = {
            k: v
            for k, v in (
                ("url", absolute_url(reply.attributes.get("href"), page_url)),
                ("author", _text(reply.css_first(".tgme_widget_message_author_name"))),
                ("text", _text(reply.css_first(".js-message_reply_text"))),
            )
            if v
        }
    document = own.first(".tgme_widget_message_document")
    if document is not None:
        extra["document"] = {
            "title": _text(document.css_first(".tgme_widget_message_document_title")),
            "size": _text(document.css_first(".tgme_widget_message_document_extra")),
        }
    views = parse_count(_text(own.first(".tgme_widget_message_views")))
    if views is not None:
        extra["views"] = views
    meta = own.first(".tgme_widget_message_meta")
    if meta is not None and "edited" in meta.text():
        extra["edited"] = True

    return Post(
        external_id=f"{channel}/{number}",
        url=url,
        text=text or None,
        author=author,
        kind=kind,
        published_at=parse_date(time_node.attributes.get("datetime")) if time_node else None,
        media=_unique(media),
        extra=extra,
    )


class _Own:
    """Selectors inside one message that skip what it quotes: the replied-to message and the
    link preview carry authors, texts and media of their own."""

    _FOREIGN = (".tgme_widget_message_reply", ".tgme_widget_message_link_preview")

    def __init__(self, message: LexborNode):
        self.message = message
        self.foreign = {n.mem_id for selector in self._FOREIGN for n in message.css(selector)}

    def all(self, selector: str) -> list[LexborNode]:
        return [n for n in self.message.css(selector) if not self._inside_foreign(n)]

    def first(self, selector: str) -> LexborNode | None:
        nodes = self.all(selector)
        return nodes[0] if nodes else None

    def _inside_foreign(self, node: LexborNode) -> bool:
        current: LexborNode | None = node.parent
        while current is not None and current.mem_id != self.message.mem_id:
            if current.mem_id in self.foreign:
                return True
            current = current.parent
        return False  # the reply and preview wrappers themselves are asked for by name


def _text(node: LexborNode | None) -> str:
    return " ".join(node.text().split()) if node is not None else ""


def _links(text_node: LexborNode, page_url: str) -> list[str]:
    out: list[str] = []
    for a in text_node.css("a[href]"):
        href = a.attributes.get("href") or ""
        if href.startswith("?q="):
            continue  # a hashtag search on the preview, not a link the author wrote
        link = absolute_url(href, page_url)
        if link and link not in out:
            out.append(link)
    return out


_BG_URL = re.compile(r"background-image\s*:\s*url\(\s*(['\"]?)(.*?)\1\s*\)", re.I)


def _background(node: LexborNode | None, page_url: str) -> str | None:
    if node is None:
        return None
    m = _BG_URL.search(node.attributes.get("style") or "")
    return absolute_url(m.group(2), page_url) if m else None


def parse_duration(value: str | None) -> float | None:
    """`0:05`, `27:40` or `1:02:03` as seconds."""
    if not value or not re.fullmatch(r"\d+(:\d{1,2}){1,2}", value.strip()):
        return None
    seconds = 0
    for part in value.strip().split(":"):
        seconds = seconds * 60 + int(part)
    return float(seconds)


def parse_count(value: str | None) -> int | None:
    """A count as Telegram abbreviates it: `746`, `59.5K`, `1.2M` as a whole number."""
    if not value:
        return None
    m = re.fullmatch(r"([\d.,]+)\s*([KMB]?)", value.strip(), re.I)
    if not m:
        return None
    scale = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}[m.group(2).upper()]
    try:
        return int(Decimal(m.group(1).replace(",", ".")) * scale)
    except InvalidOperation:
        return None


def _media(own: _Own, page_url: str) -> list[Media]:
    media: list[Media] = []
    selector = (
        ".tgme_widget_message_photo_wrap, .tgme_widget_message_video_player, "
        ".tgme_widget_message_roundvideo_player, .tgme_widget_message_voice_player, "
        ".tgme_widget_message_sticker"
    )
    for node in own.all(selector):
        classes = (node.attributes.get("class") or "").split()
        if "tgme_widget_message_photo_wrap" in classes:
            src = _background(node, page_url)
            if src:
                media.append(Media(url=src, medium="image", role="content"))
        elif "tgme_widget_message_voice_player" in classes:
            audio = node.css_first("audio[src]")
            duration = parse_duration(_text(node.css_first("time")))
            src = absolute_url(audio.attributes.get("src"), page_url) if audio else None
            if src:
                media.append(
                    Media(url=src, medium="audio", type=_mime(src), duration=duration,
                          role="content")
                )  # fmt: skip
        elif "tgme_widget_message_sticker" in classes:
            src = node.attributes.get("data-webp") or _background(node, page_url)
            if src:
                media.append(
                    Media(url=absolute_url(src, page_url) or src, medium="image", role="content")
                )
        else:
            media.extend(_video(node, page_url, role="content"))
    return media


def _video(node: LexborNode, page_url: str, role: str) -> list[Media]:
    """A video player: the file when the preview has it, its thumbnail, its running time."""
    video = node.css_first("video[src]")
    duration = parse_duration(_text(node.css_first("time")))
    thumb = _background(node.css_first('[class*="video_thumb"]'), page_url)
    out: list[Media] = []
    src = absolute_url(video.attributes.get("src"), page_url) if video is not None else None
    if src:
        out.append(Media(url=src, medium="video", type=_mime(src), duration=duration, role=role))
    else:
        # "Media is too big" / "not supported": no file, only the message that plays it.
        href = absolute_url(node.attributes.get("href"), page_url)
        if href:
            out.append(Media(url=href, medium="video", duration=duration, role="page"))
    if thumb:
        out.append(Media(url=thumb, medium="image", role="thumbnail" if role != "card" else role))
    return out


def _mime(url: str) -> str | None:
    path = url.split("?", 1)[0].lower()
    for ext, mime in ((".mp4", "video/mp4"), (".ogg", "audio/ogg"), (".oga", "audio/ogg"),
                      (".mp3", "audio/mpeg"), (".webm", "video/webm")):  # fmt: skip
        if path.endswith(ext):
            return mime
    return None


def _link_preview(node: LexborNode, page_url: str) -> tuple[dict[str, str], list[Media]]:
    link = absolute_url(node.attributes.get("href"), page_url)
    card = {
        k: v
        for k, v in (
            ("url", link),
            ("site", _text(node.css_first(".link_preview_site_name"))),
            ("title", _text(node.css_first(".link_preview_title"))),
            ("description", _rich_text(node.css_first(".link_preview_description"))),
        )
        if v
    }
    media: list[Media] = [Media(url=link, role="link")] if link else []
    image = node.css_first(".link_preview_image, .link_preview_right_image")
    src = _background(image, page_url)
    if src:
        media.append(Media(url=src, medium="image", role="card"))
    player = node.css_first(".link_preview_video_player")
    if player is not None:
        media.extend(_video(player, page_url, role="card"))
    return card, media


def _rich_text(node: LexborNode | None) -> str:
    """A message's text: <br> breaks lines; a newline in the markup is only a space, as in a
    browser (re-indented pages wrap long lines anywhere)."""
    if node is None:
        return ""
    html = node.html or ""
    if "<pre" not in html:
        html = re.sub(r"\s*\n\s*", " ", html)
    return html_to_text(html)


def _poll(own: _Own) -> dict[str, Any] | None:
    poll = own.first(".tgme_widget_message_poll")
    if poll is None:
        return None
    options = [
        {
            "text": _text(opt.css_first(".tgme_widget_message_poll_option_text")),
            "percent": _text(opt.css_first(".tgme_widget_message_poll_option_percent")),
        }
        for opt in poll.css(".tgme_widget_message_poll_option")
    ]
    out: dict[str, Any] = {
        "question": _text(poll.css_first(".tgme_widget_message_poll_question")),
        "type": _text(poll.css_first(".tgme_widget_message_poll_type")),
        "options": options,
    }
    voters = parse_count(_text(own.first(".tgme_widget_message_voters")))
    if voters is not None:
        out["voters"] = voters
    return out


def _unique(media: list[Media]) -> tuple[Media, ...]:
    seen: set[str] = set()
    out = []
    for m in media:
        if m.url not in seen:
            seen.add(m.url)
            out.append(m)
    return tuple(out)
