"""The `page` source: an HTML listing page (newsroom, press releases) read with CSS selectors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urlsplit

from monitor.charset import decode_html
from monitor.errors import ParseError
from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext, SourceConfig
from monitor.text import absolute_url, base_url, fold, html_to_text, parse_date, to_utc_iso

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode


@dataclass(frozen=True, kw_only=True)
class PageSource(SourceConfig):
    """`[sources.<id>]` with `type = "page"`: selectors are matched inside each item."""

    url: str
    item: str  # one match per post
    link: str = "a"  # href of the first match; the item itself when the item is an <a>
    title: str | None = None  # default: the link's text
    date: str | None = None  # `datetime` attribute, else the text
    summary: str | None = None
    author: str | None = None
    image: str | None = None  # first <img> in the match, kept as a thumbnail

    def validate(self) -> list[str]:
        problems = []
        if urlsplit(self.url).scheme not in ("http", "https"):
            problems.append(f"url: must be an http(s) URL, got {self.url!r}")
        for key in ("item", "link", "title", "date", "summary", "author", "image"):
            selector = getattr(self, key)
            if selector is not None and not _selector_ok(selector):
                problems.append(f"{key}: invalid CSS selector {selector!r}")
        return problems

    async def collect(self, ctx: FetchContext) -> Collected:
        resp = await ctx.get_configured(self.url)
        if resp.not_modified:
            return Collected([], http_status=304, not_modified=True)
        posts = parse_page(resp.body, resp.url, self, resp.headers.get("content-type"))
        return Collected(posts, http_status=resp.status)


def _selector_ok(selector: str) -> bool:
    from selectolax.lexbor import LexborHTMLParser, SelectolaxError

    try:
        LexborHTMLParser("<p></p>").css(selector)
    except SelectolaxError:
        return False
    return True


def parse_page(
    body: bytes, url: str, cfg: PageSource, content_type: str | None = None
) -> list[Post]:
    """The posts of a listing page; `url` is the page's final URL (after redirects)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(decode_html(body, content_type))
    items = tree.css(cfg.item)
    if not items:
        raise ParseError(
            f"item selector {cfg.item!r} matched nothing on the page — has the site changed?"
        )
    base = base_url(tree, url)
    lang = _lang(tree)
    posts: list[Post] = []
    seen: set[str] = set()
    for item in items:
        post = _post(item, cfg, base, lang)
        if post is not None and post.external_id not in seen:
            seen.add(post.external_id)
            posts.append(post)
    if not posts:
        # Items but no story in them is a changed site as surely as no items at all: said,
        # rather than an "ok, 0 new" on every fetch from now on.
        raise ParseError(
            f"item selector {cfg.item!r} matched {len(items)} "
            f"{'element' if len(items) == 1 else 'elements'} but none has a link and a title "
            "or summary — has the site changed?"
        )
    return posts


def _post(item: LexborNode, cfg: PageSource, base: str, lang: str | None) -> Post | None:
    link_node = _first(item, cfg.link)
    if link_node is None and item.tag == "a":
        link_node = item
    href = _href(link_node)
    link = absolute_url(href, base)
    if not link or urlsplit(link).scheme not in ("http", "https"):
        return None
    link = urldefrag(link).url
    title = (_text(_first(item, cfg.title)) if cfg.title else "") or _link_words(link_node)
    summary = _text(_first(item, cfg.summary), one_line=False)
    if not title and not summary:
        return None  # an icon or image link: navigation, not a story
    media: tuple[Media, ...] = ()
    if cfg.image:
        src = _img_src(_first(item, cfg.image))
        image_url = absolute_url(src, base)
        if image_url:
            media = (Media(url=image_url, medium="image", role="thumbnail"),)
    return Post(
        external_id=link,
        url=link,
        title=title or None,
        text=summary or None,
        author=_text(_first(item, cfg.author)) or None,
        kind="article",
        published_at=_date(_first(item, cfg.date)),
        lang=lang,
        media=media,
    )


def _link_words(link: LexborNode | None) -> str:
    """What a link says: its text, else what it says to a screen reader or under an image."""
    if link is None:
        return ""
    if words := _text(link):
        return words
    for attr in ("aria-label", "title"):
        if words := _one_line(link.attributes.get(attr)):
            return words
    img = link.css_first("img[alt]")
    return _one_line(img.attributes.get("alt")) if img is not None else ""


def _first(item: LexborNode, selector: str | None) -> LexborNode | None:
    # Lexbor also tests the item itself, so `link = "a"` on an <a> item finds the item.
    if not selector:
        return None
    return item.css_first(selector)


def _href(node: LexborNode | None) -> str | None:
    if node is None:
        return None
    href = node.attributes.get("href")
    if href:
        return href
    inner = node.css_first("a[href]")  # `link = "h2"` means the link inside the heading
    return inner.attributes.get("href") if inner is not None else None


def _text(node: LexborNode | None, one_line: bool = True) -> str:
    if node is None:
        return ""
    text = html_to_text(node.html)
    return _one_line(text) if one_line else text


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _img_src(node: LexborNode | None) -> str | None:
    if node is None:
        return None
    img = node if node.tag == "img" else node.css_first("img")
    if img is None:
        return None
    attrs = img.attributes
    # Lazy-loading pages keep a placeholder (often a data: URI) in src and the picture elsewhere.
    for key in ("data-src", "data-lazy-src", "data-original", "src"):
        value = attrs.get(key)
        if value and not value.strip().startswith("data:"):
            return value
    srcset = attrs.get("srcset") or attrs.get("data-srcset")
    return srcset.split(",")[0].split()[0] if srcset and srcset.strip() else None


def _date(node: LexborNode | None) -> str | None:
    if node is None:
        return None
    for key in ("datetime", "content"):
        value = node.attributes.get(key)
        if value:
            parsed = parse_human_date(value)
            if parsed:
                return parsed
    return parse_human_date(_text(node))


def _lang(tree: LexborHTMLParser) -> str | None:
    node = tree.css_first("html[lang]")
    lang = (node.attributes.get("lang") or "").strip() if node is not None else ""
    return lang or None


# --- dates as listing pages write them ------------------------------------------------------

_MONTH_NAMES = {
    1: (
        "january jan janvier janv januar jänner январь января янв ocak",
        "enero ene gennaio gen janeiro januari stycznia styczeń січня січень يناير كانون_الثاني",
    ),
    2: (
        "february feb février févr fevr februar февраль февраля фев şubat",
        "febrero febbraio fevereiro fev februari lutego luty лютого лютий فبراير شباط",
    ),
    3: (
        "march mar mars märz mär mrz март марта mart",
        "marzo março maart marca marzec березня березень مارس آذار",
    ),
    4: (
        "april apr avril avr апрель апреля апр nisan",
        "abril abr aprile kwietnia kwiecień квітня квітень أبريل ابريل نيسان",
    ),
    5: (
        "may mai май мая mayıs",
        "mayo maggio mag maio mei maja maj травня травень مايو أيار",
    ),
    6: (
        "june jun juin juni июнь июня haziran",
        "junio giugno giu junho czerwca czerwiec червня червень يونيو حزيران",
    ),
    7: (
        "july jul juillet juil juli июль июля temmuz",
        "julio luglio lug julho lipca lipiec липня липень يوليو تموز",
    ),
    8: (
        "august aug août авг август августа ağustos",
        "agosto augustus sierpnia sierpień серпня серпень أغسطس آب",
    ),
    9: (
        "september sep sept septembre сентябрь сентября сен сент eylül",
        "septiembre setiembre settembre setembro września wrzesień вересня вересень سبتمبر أيلول",
    ),
    10: (
        "october oct octobre oktober okt октябрь октября окт ekim",
        "octubre ottobre ott outubro października październik жовтня жовтень أكتوبر تشرين_الأول",
    ),
    11: (
        "november nov novembre ноябрь ноября ноя нояб kasım",
        "noviembre novembro listopada listopad листопада листопад نوفمبر تشرين_الثاني",
    ),
    12: (
        "december dec décembre déc dezember dez декабрь декабря дек aralık",
        "diciembre dic dicembre dezembro grudnia grudzień грудня грудень ديسمبر كانون_الأول",
    ),
}
# Not Portuguese's "set" and "out", nor the Romance "ago" (agosto): English words, which a
# line such as "3 days ago, 2026" would read as a month. The Levantine كانون and تشرين name
# two months each, told apart by the word after them, so they are written as one word here
# and read as one below.
# Folded (case and accents off) so "AOÛT", "août" and "aout" or "KASIM" and "kasım" all match.
_MONTHS = {
    fold(name): n for n, both in _MONTH_NAMES.items() for names in both for name in names.split()
}
_YMD = re.compile(r"(?<!\d)(\d{4})([./-])(\d{1,2})\2(\d{1,2})(?!\d)")
_DMY = re.compile(r"(?<!\d)(\d{1,2})([./-])(\d{1,2})\2(\d{4})(?!\d)")
_TIME = re.compile(r"(?<!\d)(\d{1,2})[:h](\d{2})(?::(\d{2}))?(?!\d)(?:\s*([ap])\.?m\b\.?)?", re.I)
_YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")
_WORD = re.compile(r"[^\W\d]+")  # "_" joins the two words of a Levantine month
_TWO_WORD_MONTH = re.compile(r"(كانون|تشرين)\s+(الثاني|الأول|الاول)")
# The day sits next to the month: "24 Nov", "24. November", "1er décembre", "Nov. 24",
# "24 de noviembre".
_DAY_BEFORE = re.compile(r"(?<!\d)(\d{1,2})(?:er|st|nd|rd|th)?\.?\s*(?:de\s+)?$", re.I)
_DAY_AFTER = re.compile(r"^\.?\s*(\d{1,2})(?!\d)")


def parse_human_date(value: str | None) -> str | None:
    """A date as feeds or people write it ("24 novembre 2026", "Nov. 24, 2026 10:05",
    "24.11.2026", "24 ноября 2026 года") as ISO UTC, or None.

    Times without an offset are taken as UTC: a listing rarely says which zone it means.
    """
    if not value or not value.strip():
        return None
    iso = parse_date(value)
    if iso:
        return iso
    s = value.strip()
    hour = minute = second = 0
    t = _TIME.search(s)
    if t:
        hour, minute, second = int(t.group(1)), int(t.group(2)), int(t.group(3) or 0)
        if t.group(4):
            hour = hour % 12 + (12 if t.group(4).lower() == "p" else 0)
        s = s[: t.start()] + " " + s[t.end() :]
    if m := _YMD.search(s):
        return _iso(int(m.group(1)), int(m.group(3)), int(m.group(4)), hour, minute, second)
    if m := _DMY.search(s):
        a, b = int(m.group(1)), int(m.group(3))
        # Day first, as most of the world writes it, unless that cannot be (11/24/2026).
        day, month = (b, a) if b > 12 >= a else (a, b)
        return _iso(int(m.group(4)), month, day, hour, minute, second)
    year = _YEAR.search(s)
    if year is None:
        return None
    s = _TWO_WORD_MONTH.sub(r"\1_\2", s)
    for word in _WORD.finditer(s):
        month = _MONTHS.get(fold(word.group()))
        if month is None:
            continue
        day = _DAY_BEFORE.search(s[: word.start()]) or _DAY_AFTER.search(s[word.end() :])
        if day is not None:
            return _iso(int(year.group(1)), month, int(day.group(1)), hour, minute, second)
    return None


def _iso(year: int, month: int, day: int, hour: int, minute: int, second: int) -> str | None:
    try:
        return to_utc_iso(datetime(year, month, day, hour, minute, second))
    except ValueError:
        return None
