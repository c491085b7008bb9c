"""The apprise notifier: chat and push messages (Slack, Teams, Telegram, Matrix, ntfy…) through Apprise."""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.notifiers import message
from monitor.notifiers.base import DeliveryError, NotifierConfig

if TYPE_CHECKING:
    from monitor.http import Http

MARKDOWN, HTML, TEXT = "markdown", "html", "text"
SNIPPET_LIMIT = 600  # characters of snippet in a chat message; the link has the rest
DIGEST_LIMIT = 20  # matches shown in one digest message; the rest are counted
_MARK = re.compile(r"\[([^\[\]\n]+)\]")
# What could start markup, a link or a mention anywhere in a line (CommonMark backslash escapes),
# and at the start of a line (a heading, quote or list).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_MD_LINE_START = re.compile(r"^(\s*)([#>+=-]|\d+[.)])")
# Schemes that Apprise no longer takes, and what does the job now.
_MOVED = {
    "msteams://": "Microsoft retired the Teams connectors it used: "
    "write a workflows:// URL (a Power Automate workflow) instead",
}
# Services whose plain text is read as Markdown: Apprise sends them text as it is.
_MARKDOWN_TEXT = ("mmost://", "mmosts://")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

_local = threading.local()
_setup = threading.Lock()  # the first sends may come from several worker threads at once


class _Collect(logging.Handler):
    """Apprise says why a send failed only in its log: keep what this thread's send logged."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = getattr(_local, "sink", None)
        if sink is not None and record.levelno >= logging.WARNING:
            sink.append(record.getMessage())


def _apprise() -> Any:
    """Apprise, imported when a message is first checked or sent (it loads 100+ plugins)."""
    import apprise

    logger = logging.getLogger("apprise")
    with _setup:
        if any(isinstance(h, _Collect) for h in logger.handlers):
            return apprise
        logger.addHandler(_Collect())
        # Its warnings become the delivery's reason (secrets masked, in `monitor alerts`);
        # passed on to our log as well they would print once unmasked, and twice.
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    return apprise


def target_key(url: str) -> str:
    """A stable name for one URL, kept in `deliveries.reached`: a hash, never the URL's secrets."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def scheme(url: str) -> str:
    m = _SCHEME.match(url.strip())
    return f"{m.group(1).lower()}://" if m else "(no scheme)"


def _instantiate(url: str) -> Any:
    apprise = _apprise()
    # In memory: a plugin's cache (Matrix's login, for one) never lands in the home directory.
    asset = apprise.AppriseAsset(storage_mode="memory")
    return apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)


def body_format(plugin: Any, url: str = "") -> tuple[str, str]:
    """The format to write in, and the one to tell Apprise: the service's default, else
    Markdown when it reads Markdown at all (Mattermost reads its plain text as Markdown)."""
    fmt = _declared_format(plugin)
    if fmt == TEXT and scheme(url) in _MARKDOWN_TEXT:
        return MARKDOWN, TEXT
    return fmt, fmt


def _declared_format(plugin: Any) -> str:
    declared = plugin.notify_format
    formats = [
        str(getattr(f, "value", f))
        for f in (declared if isinstance(declared, tuple | list) else [declared])
    ]
    if formats and formats[0] in (MARKDOWN, HTML):
        return formats[0]
    for wanted in (MARKDOWN, HTML):
        if wanted in formats:
            return wanted
    return TEXT


# --- the message (pure) -------------------------------------------------------------------


def md_escape(text: str) -> str:
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def _bold(text: str, fmt: str) -> str:
    if fmt == MARKDOWN:
        return f"**{md_escape(text)}**"
    if fmt == HTML:
        return f"<b>{html.escape(text)}</b>"
    return text


def _plain(text: str, fmt: str) -> str:
    if fmt == MARKDOWN:
        return md_escape(text)
    if fmt == HTML:
        return html.escape(text)
    return text


def highlight(snippet: str | None, fmt: str) -> str:
    """The snippet with each `[word]` in the service's bold, everything else inert."""
    text = message.truncate(message.one_line(snippet), SNIPPET_LIMIT)
    if fmt == TEXT:
        return text  # the `[word]` marks are the plain-text bold
    out, last = [], 0
    for m in _MARK.finditer(text):
        out.append(_plain(text[last : m.start()], fmt))
        out.append(_bold(m.group(1), fmt))
        last = m.end()
    out.append(_plain(text[last:], fmt))
    return "".join(out)


def _link(url: str, label: str, fmt: str) -> str:
    safe = url.lower().startswith(("http://", "https://"))
    if fmt == MARKDOWN and safe:
        return f"[{md_escape(label)}](<{url.replace('>', '%3E')}>)"
    if fmt == HTML and safe:
        return f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>'
    return _plain(url, fmt)


def _facts(payload: dict[str, Any]) -> str:
    """`alert · source · time`: who fired, on what, when (UTC)."""
    if message.is_event(payload):
        source = message.one_line(str((payload.get("source") or {}).get("id", "")))
        when = message.format_date(payload.get("at"))
    else:
        post = payload.get("post") or {}
        source = message.one_line(post.get("source"))
        when = message.format_date(post.get("published_at"))
    parts = [message.one_line(str(payload.get("alert", ""))), source, when]
    offset = message.format_offset(payload.get("offset"))
    if offset:
        parts.append(f"at {offset}")
    return " · ".join(p for p in parts if p)


def _section(payload: dict[str, Any], fmt: str, headline: bool) -> list[str]:
    link = message.one_line(payload.get("link") or (payload.get("post") or {}).get("url"))
    lines = []
    if headline:
        lines.append(_bold(message.post_title(payload), fmt))
    lines.append(_plain(_facts(payload), fmt))
    if message.is_event(payload):
        error = message.one_line(payload.get("last_error"))
        if error and payload.get("type") != "source_recovered":
            lines.append(_plain(f"Last error: {error}", fmt))
    else:
        snippet = highlight(payload.get("snippet"), fmt)
        if snippet:
            lines.append(snippet)
    if link:
        at = message.format_offset(payload.get("offset"))
        lines.append(_link(link, f"watch at {at}" if at else "open", fmt) if fmt != TEXT else link)
    return lines


def render(payloads: list[dict[str, Any]], fmt: str) -> tuple[str, str]:
    """The title and body of one chat message (a match, an event, or a digest) in `fmt`."""
    title = message.subject(payloads)
    digest = len(payloads) > 1
    sections = [_section(p, fmt, headline=digest) for p in payloads[:DIGEST_LIMIT]]
    if len(payloads) > DIGEST_LIMIT:
        sections.append([_plain(f"… and {len(payloads) - DIGEST_LIMIT} more", fmt)])
    sep = "<br>\n" if fmt == HTML else "\n"
    gap = "<br>\n<br>\n" if fmt == HTML else "\n\n"
    return title, gap.join(sep.join(lines) for lines in sections)


# --- the notifier ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AppriseNotifier(NotifierConfig):
    """`type = "apprise"`: one or more Apprise URLs (`slack://…`, `tgram://…`, `ntfy://…`)."""

    urls: list[str]

    def validate(self) -> list[str]:
        problems = []
        if not self.urls:
            problems.append("urls: needs at least one Apprise URL")
        # Only the scheme is ever quoted: the rest of the URL is the service's token.
        problems += [
            f"urls[{i}]: not an Apprise URL (service://…)"
            for i, url in enumerate(self.urls)
            if not _SCHEME.match(url.strip())
        ]
        if len(set(self.urls)) != len(self.urls):
            problems.append("urls: the same URL twice would send every message twice")
        return problems

    def check(self) -> list[str]:
        # Apprise loads its 100+ plugins to read a URL (about a second): only the commands
        # that may send pay for it.
        return [
            f"urls[{i}]: Apprise cannot send to this {scheme(url)} URL ("
            + _MOVED.get(scheme(url), "an unknown service, or a token or part missing or malformed")
            + ")"
            for i, url in enumerate(self.urls)
            if _SCHEME.match(url.strip()) and _instantiate(url) is None
        ]

    async def send(
        self,
        payloads: list[dict[str, Any]],
        delivery_id: str,
        http: Http,
        *,
        reached: frozenset[str] = frozenset(),
    ) -> None:
        """One message to every URL not `reached` by an earlier try of this delivery."""
        todo = [url for url in self.urls if target_key(url) not in reached]
        reasons = await asyncio.gather(
            *(asyncio.to_thread(self._send_one, u, payloads) for u in todo)
        )
        failed = [reason for reason in reasons if reason is not None]
        if failed:
            done = reached | {
                target_key(u) for u, r in zip(todo, reasons, strict=True) if r is None
            }
            raise DeliveryError("; ".join(failed), reached=frozenset(done))

    def _send_one(self, url: str, payloads: list[dict[str, Any]]) -> str | None:
        """Send to one URL, in a worker thread (Apprise blocks); the reason it failed, or None."""
        plugin = _instantiate(url)
        if plugin is None:
            return f"{scheme(url)}: Apprise cannot use this URL"
        # Apprise's own timeouts, so that a stalled service frees the thread too.
        plugin.socket_connect_timeout = plugin.socket_read_timeout = self.timeout
        fmt, told = body_format(plugin, url)
        title, body = render(message.scrub(payloads), fmt)
        _local.sink = sink = []
        try:
            ok = plugin.notify(body=body, title=title, body_format=told)
        except Exception as e:  # noqa: BLE001 - a plugin's bug is this delivery's failure
            ok, sink = False, [*sink, f"{type(e).__name__}: {e}"]
        finally:
            _local.sink = None
        if ok:
            return None
        where = message.one_line(plugin.url(privacy=True)).split("?", 1)[0]
        why = message.truncate(message.one_line(sink[-1]), 300) if sink else "not sent"
        return f"{plugin.service_name} {where}: {why}"
