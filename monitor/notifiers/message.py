"""Pure formatting of alert payloads: safe text for headers, and the plain-text and HTML bodies."""

from __future__ import annotations

import html
import math
import re
import unicodedata
from typing import Any

SUBJECT_TITLE_LIMIT = 120  # characters of title in a subject; mail clients cut around here anyway
TEXT_EXCERPT_LIMIT = 2000  # characters of post text in a body; the link has the rest

_WS = re.compile(r"\s+")
_MARK = re.compile(r"\[([^\[\]\n]+)\]")
_ISO_UTC = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|\+00:00)$")
_SAFE_SCHEMES = ("http://", "https://")


def scrub(value: Any) -> Any:
    """A copy of a JSON-like value that any encoder accepts: no lone surrogates, no NaN.

    Lone surrogates come from broken feeds and `surrogateescape` decoding; they cannot be
    encoded as UTF-8, so one bad character would otherwise fail a whole delivery forever.
    """
    if isinstance(value, str):
        # UTF-16 round trip joins valid surrogate pairs and turns lone ones into U+FFFD.
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {scrub(str(k)): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def one_line(text: str | None) -> str:
    """Text safe for a header: controls and line/paragraph separators become single spaces."""
    if not text:
        return ""
    text = scrub(text)
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    return _WS.sub(" ", cleaned).strip()


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary when one is near, with `…`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def body_text(text: str | None) -> str:
    """Multi-line text for a body: newlines kept, other controls dropped, one line ending kind."""
    if not text:
        return ""
    text = scrub(text).replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    )


def span(seconds: Any) -> str:
    """A time span as a desk reads it: `3d 4h`, `6h 5m`, `12m`, `45s`."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return "?"
    total = max(0, int(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
    return " ".join(parts[:2])


def event_title(payload: dict[str, Any]) -> str:
    """A one-line title for a source-health event (`type` source_failing, _silent, _recovered)."""
    source = one_line(str((payload.get("source") or {}).get("id", ""))) or "(source)"
    lasted = span(payload.get("seconds"))
    kind = payload.get("type")
    if kind == "source_failing":
        error = one_line(payload.get("last_error"))
        return f"{source} failing for {lasted}" + (f": {error}" if error else "")
    if kind == "source_silent":
        return f"{source} silent: no new post for {lasted}"
    if payload.get("condition") == "silent":
        return f"{source} recovered: a new post after {lasted} of silence"
    return f"{source} recovered after failing for {lasted}"


def is_event(payload: dict[str, Any]) -> bool:
    return str(payload.get("type", "")).startswith("source_")


def count(payloads: list[dict[str, Any]]) -> str:
    """`3 matches`, or `3 alerts` when a digest holds source-health events too."""
    what = "alerts" if any(is_event(p) for p in payloads) else "matches"
    return f"{len(payloads)} {what}"


def post_title(payload: dict[str, Any]) -> str:
    """A one-line title for a match: the post's title, else the start of its text, else its URL.

    For a source-health event, what happened to which source.
    """
    if is_event(payload):
        return event_title(payload)
    post = payload.get("post") or {}
    for candidate in (post.get("title"), post.get("text"), post.get("url")):
        line = one_line(candidate if isinstance(candidate, str) else None)
        if line:
            return line
    return "(untitled)"


def subject(payloads: list[dict[str, Any]]) -> str:
    """`[alert id] post title`, or for a digest `[N matches] alert ids: first title`."""
    if len(payloads) == 1:
        alert = one_line(str(payloads[0].get("alert", "")))
        return f"[{alert}] {truncate(post_title(payloads[0]), SUBJECT_TITLE_LIMIT)}"
    alerts = ", ".join(dict.fromkeys(one_line(str(p.get("alert", ""))) for p in payloads))
    titles = "; ".join(post_title(p) for p in payloads)
    return f"[{count(payloads)}] {truncate(f'{alerts}: {titles}', SUBJECT_TITLE_LIMIT)}"


def format_offset(seconds: float | int | None) -> str | None:
    """`83` → `1:23`, `3723` → `1:02:03`; None when there is no offset."""
    if seconds is None or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return None
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_date(value: str | None) -> str:
    """An ISO 8601 UTC time as `2024-05-01 12:30 UTC`; anything else as given."""
    line = one_line(value)
    m = _ISO_UTC.match(line)
    return f"{m.group(1)} {m.group(2)} UTC" if m else line


def _details(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The labelled facts of one match, in display order, empty ones left out."""
    if is_event(payload):
        return _event_details(payload)
    post = payload.get("post") or {}
    source = one_line(post.get("source"))
    if post.get("source_type"):
        source += f" ({one_line(post.get('source_type'))})"
    rows = [
        ("Alert", one_line(str(payload.get("alert", "")))),
        ("Query", one_line(payload.get("query"))),
        ("Source", source),
        ("Author", one_line(post.get("author"))),
        ("Published", format_date(post.get("published_at"))),
    ]
    offset = format_offset(payload.get("offset"))
    if offset:
        rows.append(("At", offset))
    return [(label, value) for label, value in rows if value]


def _event_details(payload: dict[str, Any]) -> list[tuple[str, str]]:
    source = payload.get("source") or {}
    name = one_line(str(source.get("id", "")))
    if source.get("type"):
        name += f" ({one_line(str(source['type']))})"
    failures = payload.get("failures")
    rows = [
        ("Alert", one_line(str(payload.get("alert", "")))),
        ("Source", name),
        ("Since", format_date(payload.get("since"))),
        ("Failures", str(failures) if failures else ""),
        ("Last error", one_line(payload.get("last_error"))),
        ("Last success", format_date(payload.get("last_ok_at"))),
        ("Last new post", format_date(payload.get("last_new_at"))),
    ]
    return [(label, value) for label, value in rows if value]


def _link(payload: dict[str, Any]) -> str:
    post = payload.get("post") or {}
    return one_line(payload.get("link") or post.get("url"))


def text_body(payloads: list[dict[str, Any]]) -> str:
    """The text/plain part: a section per match; the snippet keeps its `[word]` marks."""
    sections = []
    for payload in payloads:
        lines = [post_title(payload), ""]
        width = max((len(label) for label, _ in _details(payload)), default=0)
        lines += [f"{label + ':':<{width + 1}} {value}" for label, value in _details(payload)]
        link = _link(payload)
        if link:
            lines += ["", link]
        snippet = body_text(payload.get("snippet")).strip()
        if snippet:
            lines += ["", snippet]
        text = body_text((payload.get("post") or {}).get("text")).strip()
        if text:
            lines += ["", truncate(text, TEXT_EXCERPT_LIMIT)]
        sections.append("\n".join(lines))
    header = f"{count(payloads)}\n\n" if len(payloads) > 1 else ""
    return header + "\n\n---\n\n".join(sections) + "\n"


def highlight_html(snippet: str | None) -> str:
    """The snippet HTML-escaped, with each `[word]` as `<mark>word</mark>`.

    Escaping happens first, so the marked words are already inert and only our tags are markup.
    """
    escaped = html.escape(body_text(snippet).strip(), quote=True)
    return _MARK.sub(r"<mark>\1</mark>", escaped)


def _html_link(url: str) -> str:
    # A feed can carry `javascript:` or `data:` URLs; only web links become clickable.
    if url.lower().startswith(_SAFE_SCHEMES):
        return f'<a href="{html.escape(url, quote=True)}">{html.escape(url)}</a>'
    return html.escape(url)


def html_body(payloads: list[dict[str, Any]]) -> str:
    """The text/html part: the same content as the text part, every post field escaped."""
    esc = html.escape
    sections = []
    for payload in payloads:
        # The post's own words take their direction from themselves (Arabic, Hebrew and
        # Persian right to left); the labels around them stay left to right.
        own = ' dir="auto"'
        parts = [f"<h2{own}>{esc(post_title(payload))}</h2>"]
        rows = "".join(
            f"<tr><th align=left>{esc(label)}</th><td>{esc(value)}</td></tr>"
            for label, value in _details(payload)
        )
        parts.append(f"<table>{rows}</table>")
        link = _link(payload)
        if link:
            parts.append(f"<p>{_html_link(link)}</p>")
        snippet = highlight_html(payload.get("snippet"))
        if snippet:
            parts.append(f"<blockquote{own}>{snippet}</blockquote>")
        text = body_text((payload.get("post") or {}).get("text")).strip()
        if text:
            escaped = esc(truncate(text, TEXT_EXCERPT_LIMIT)).replace("\n", "<br>\n")
            parts.append(f"<p{own}>{escaped}</p>")
        sections.append("<section>\n" + "\n".join(parts) + "\n</section>")
    header = f"<p>{count(payloads)}</p>\n" if len(payloads) > 1 else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
        + header
        + "\n<hr>\n".join(sections)
        + "\n</body></html>\n"
    )
