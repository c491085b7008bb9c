"""Media RSS, enclosures and iTunes images of an RSS item or Atom entry, read into Media."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from lxml import etree

from monitor.feeds.common import Fields, _abs, _first, _float, _int, _medium, _Names
from monitor.models import Media


def media_content(a: Mapping[str, Any], base: str) -> Media | None:
    """A media:content, from its attributes (an lxml element's, or feedparser's dict)."""
    url = _abs(a.get("url"), base)
    if not url:
        return None
    mime = a.get("type")
    return Media(
        url=url,
        medium=_medium(a.get("medium"), mime),
        type=mime or None,
        width=_int(a.get("width")),
        height=_int(a.get("height")),
        duration=_float(a.get("duration")),
        role="content",
    )


def media_thumbnail(a: Mapping[str, Any], base: str) -> Media | None:
    url = _abs(a.get("url"), base)
    if not url:
        return None
    width, height = _int(a.get("width")), _int(a.get("height"))
    return Media(url=url, medium="image", width=width, height=height, role="thumbnail")


def enclosure(href: str | None, mime: str | None, base: str) -> Media | None:
    url = _abs(href, base)
    if not url:
        return None
    return Media(url=url, medium=_medium(None, mime or None), type=mime or None, role="enclosure")


def _media(el: etree._Element, names: _Names, base: str, out: list[Media]) -> None:
    """Append the media an item child describes (media:*, <enclosure>, Atom rel=enclosure)."""
    key, local = names(el.tag)
    a = el.attrib
    found: Media | None = None
    if key == "media" and local == "content":
        if (content := media_content(a, base)) is not None:
            out.append(content)
        for child in el:  # thumbnails may sit inside the media:content they illustrate
            if names(child.tag) == ("media", "thumbnail"):
                _media(child, names, base, out)
    elif key == "media" and local == "thumbnail":
        found = media_thumbnail(a, base)
    elif key == "media" and local == "group":
        for child in el:
            _media(child, names, base, out)
    elif (key, local) == ("", "enclosure") or (
        (key, local) == ("atom", "link") and a.get("rel") == "enclosure"
    ):
        found = enclosure(a.get("url") or a.get("href"), a.get("type"), base)
    elif (key, local) == ("itunes", "image"):
        # Some podcast hosts write the URL as the element's text rather than its href.
        url = _abs(a.get("href") or (el.text or "").strip(), base)
        if url:
            found = Media(url=url, medium="image", role="image")
    if found is not None:
        out.append(found)


# The children `_media` reads: an item's others (title, guid, description, ...) are passed
# over without reading their attributes, a tenth of the item's parsing.
_MEDIA_KEYS = frozenset({("media", "content"), ("media", "thumbnail"), ("media", "group"),
                         ("", "enclosure"), ("atom", "link"), ("itunes", "image")})  # fmt: skip


def _item_media(item: etree._Element, names: _Names, base: str, f: Fields) -> list[Media]:
    out: list[Media] = []
    kinds = _MEDIA_KEYS.intersection(f)
    if len(kinds) == 1:
        # One kind of media element, the usual case: its elements in document order are
        # already in the item's fields, so its other children's names aren't asked again.
        for child in f[next(iter(kinds))]:
            _media(child, names, base, out)
    elif kinds:  # several kinds: in document order across them, as the feed lists them
        for child in item:
            if names(child.tag) in _MEDIA_KEYS:
                _media(child, names, base, out)
    durations = f.get(("itunes", "duration"))
    if durations and (duration := clock_seconds(durations[0].text)) is not None:
        # A podcast gives the episode's length beside its <enclosure>, not on it.
        out = [
            replace(m, duration=duration) if m.role == "enclosure" and m.duration is None else m
            for m in out
        ]
    return out


def clock_seconds(value: str | None) -> float | None:
    """itunes:duration in seconds: "1:02:03", "62:03", "3723" or "3723.5"."""
    parts = (value or "").strip().split(":")
    if not parts[0] or len(parts) > 3:
        return None
    seconds = 0.0
    for part in parts:
        number = _float(part)
        if number is None or number < 0:
            return None
        seconds = seconds * 60 + number
    return seconds


def _media_description(f: Fields, names: _Names, what: str) -> tuple[str, bool] | None:
    """media:title / media:description of an item or its media:group (YouTube, Rutube)."""
    el = _first(f, ("media", what))
    if el is None:
        groups = f.get(("media", "group"), ())
        el = next((c for g in groups for c in g if names(c.tag) == ("media", what)), None)
    if el is None or not (el.text or "").strip():
        return None
    return el.text or "", el.get("type") == "html"
