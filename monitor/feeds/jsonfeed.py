"""JSON Feed 1.0 and 1.1 documents read into posts."""

from __future__ import annotations

import json
from typing import Any

from monitor.errors import ParseError
from monitor.feeds.common import (
    _abs,
    _date,
    _float,
    _fullest,
    _lang,
    _medium,
    _one_line,
    _post,
    _title,
)
from monitor.models import Media, Post


def _s(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # ids are sometimes numbers despite the spec
    return None


def _json_author(obj: dict[str, Any]) -> str | None:
    authors = obj.get("authors")  # 1.1; 1.0 has a single `author`
    for a in [*(authors if isinstance(authors, list) else []), obj.get("author")]:
        if isinstance(a, dict) and _s(a.get("name")):
            return _one_line(_s(a.get("name")))
    return None


def _json_media(item: dict[str, Any], base: str) -> list[Media]:
    media = []
    for key, role in (("image", "image"), ("banner_image", "banner")):
        image = _abs(_s(item.get(key)), base)
        if image:
            media.append(Media(url=image, medium="image", role=role))
    attachments = item.get("attachments")
    for att in attachments if isinstance(attachments, list) else ():
        url = _abs(_s(att.get("url")), base) if isinstance(att, dict) else None
        if url:
            mime = _s(att.get("mime_type"))
            duration = _float(att.get("duration_in_seconds"))
            media.append(
                Media(
                    url=url,
                    medium=_medium(None, mime),
                    type=mime,
                    duration=duration,
                    role="enclosure",
                )
            )
    return media


def _json_posts(body: bytes, url: str) -> list[Post]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"not a JSON Feed: invalid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ParseError("not a JSON Feed: no `items` list")
    base = _abs(_s(data.get("home_page_url")), url) or url
    feed_lang = _lang(_s(data.get("language")))
    feed_author = _json_author(data)  # the default for items, as the spec says
    posts = []
    for item in data["items"]:
        if not isinstance(item, dict):
            continue
        bodies = [(_s(item.get("content_html")) or "", True)]
        bodies += [(_s(item.get(k)) or "", False) for k in ("content_text", "summary")]
        posts.append(
            _post(
                ident=_s(item.get("id")),
                link=_abs(_s(item.get("url")), base) or _abs(_s(item.get("external_url")), base),
                title=_title(_s(item.get("title")), None),
                text=_fullest(bodies),
                author=_json_author(item) or feed_author,
                published_at=_date(_s(item.get("date_published")))
                or _date(_s(item.get("date_modified"))),
                lang=_lang(_s(item.get("language"))) or feed_lang,
                media=_json_media(item, base),
            )
        )
    return posts
