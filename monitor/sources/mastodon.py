"""The `mastodon` source: an account's statuses through the public Mastodon client API."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlencode, urlsplit

from monitor.errors import ParseError
from monitor.http import FetchError, Response
from monitor.models import Kind, Media, Post
from monitor.sources.base import Collected, FetchContext, PageBudget, SourceConfig
from monitor.text import html_to_text, parse_date

# Mastodon names are [A-Za-z0-9_]; other servers speaking its API (Akkoma, GoToSocial)
# also allow dots and hyphens inside.
_ACCOUNT = re.compile(
    r"^@?(?P<user>[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$"
)
PAGE_MAX = 40  # Mastodon's own cap on `limit` for statuses
MAX_PAGES = 10
_AUDIO_EXT = (".mp3", ".ogg", ".oga", ".opus", ".m4a", ".wav", ".flac", ".aac")


@dataclass(frozen=True, kw_only=True)
class MastodonSource(SourceConfig):
    """`type = "mastodon"`: one account, read without a token from a server that serves it."""

    type_name: ClassVar[str] = "mastodon"
    account: str  # "@user@instance"
    instance: str | None = None  # base URL to ask instead of https://<instance>
    limit: int = 40  # statuses on the first fetch
    include_boosts: bool = True

    def validate(self) -> list[str]:
        problems = []
        if not _ACCOUNT.match(self.account):
            problems.append(
                f"account: {self.account!r} is not a fediverse address; write it as "
                "'@user@instance', e.g. '@outletnews@mastodon.social'"
            )
        if self.instance is not None and not self.instance.startswith(("http://", "https://")):
            problems.append(f"instance: must be an http(s) URL, got {self.instance!r}")
        if not 1 <= self.limit <= 400:
            problems.append("limit: must be between 1 and 400")
        return problems

    @property
    def user(self) -> str:
        return _parts(self.account)[0]

    @property
    def domain(self) -> str:
        return _parts(self.account)[1]

    @property
    def base(self) -> str:
        return (self.instance or f"https://{self.domain}").rstrip("/")

    def describe(self) -> str:
        return f"@{self.user}@{self.domain}" + (f" via {self.base}" if self.instance else "")

    def lookup_url(self) -> str:
        # The account's own server knows it by its bare name; any other needs the domain.
        local = urlsplit(self.base).hostname == self.domain.lower()
        acct = self.user if local else f"{self.user}@{self.domain}"
        return f"{self.base}/api/v1/accounts/lookup?{urlencode({'acct': acct})}"

    def statuses_url(self, account_id: str, since_id: str | None, max_id: str | None) -> str:
        params: dict[str, Any] = {"limit": min(self.limit, PAGE_MAX)}
        if not self.include_boosts:
            params["exclude_reblogs"] = "true"
        if since_id:
            params["since_id"] = since_id
        if max_id:
            params["max_id"] = max_id
        return f"{self.base}/api/v1/accounts/{account_id}/statuses?{urlencode(params)}"

    async def collect(self, ctx: FetchContext) -> Collected:
        """Look the account up once (its id is kept), then read its statuses newest first:
        `limit` on the first fetch, everything after `since_id` on later ones."""
        me = f"@{self.user}@{self.domain}".lower()
        if (ctx.state.get("account"), ctx.state.get("base")) != (me, self.base):
            ctx.state.clear()
        since = ctx.state.get("since_id")
        page_size = min(self.limit, PAGE_MAX)
        posts: list[Post] = []
        newest: str | None = None
        max_id: str | None = None
        status: int | None = None
        complete = False
        pages = PageBudget(ctx, MAX_PAGES)
        for _ in pages:
            resp = await self._statuses(ctx, since, max_id)
            status = resp.status
            page = parse_statuses(resp.body, resp.url, urlsplit(self.base).netloc)
            posts += page.posts
            newest = newest or page.newest_id
            # A short page is the last one: the start of the account, or since_id reached.
            if not page.posts or page.count < page_size or page.oldest_id is None:
                complete = True
                break
            if since is None and len(posts) >= self.limit:
                complete = True
                break
            max_id = page.oldest_id
        if since is not None and not complete and not pages.ran_out:
            ctx.log.append(f"stopped after {MAX_PAGES} pages; older new statuses were skipped")
        if since is None:
            posts = posts[: self.limit]
        ctx.state.update(account=me, base=self.base, since_id=_newer(newest, since))
        if not self.include_boosts:
            posts = [p for p in posts if "boosted_by" not in p.extra]
        return Collected(posts, http_status=status)

    async def _statuses(self, ctx: FetchContext, since: str | None, max_id: str | None) -> Response:
        kept = ctx.state.get("account_id")
        account_id = kept or await self._lookup(ctx)
        url = self.statuses_url(account_id, since, max_id)
        resp = await ctx.http.get(url, timeout=ctx.timeout, ok_statuses=(404, 410))
        if resp.status == 404 and kept:
            account_id = await self._lookup(ctx)  # the kept id went stale (a moved account)
            url = self.statuses_url(account_id, since, max_id)
            resp = await ctx.http.get(url, timeout=ctx.timeout, ok_statuses=(404, 410))
        if resp.status in (404, 410):
            raise FetchError(
                f"{self.describe()}: the account's statuses are gone "
                f"(HTTP {resp.status}: suspended, deleted or moved?)",
                status=resp.status,
            )
        ctx.state["account_id"] = account_id
        return resp

    async def _lookup(self, ctx: FetchContext) -> str:
        resp = await ctx.http.get(
            self.lookup_url(), timeout=ctx.timeout, ok_statuses=(401, 403, 404, 410)
        )
        if resp.status == 404:
            raise FetchError(
                f"no account @{self.user}@{self.domain} on {self.base} (or the server has no "
                "accounts/lookup: Mastodon 3.4 or later is needed)",
                status=404,
            )
        if resp.status == 410:
            raise FetchError(f"@{self.user}@{self.domain} is suspended or gone (HTTP 410)", 410)
        if resp.status in (401, 403):
            raise FetchError(
                f"{self.base} only answers signed-in clients (HTTP {resp.status}); set `instance` "
                "to a server that serves public data",
                status=resp.status,
            )
        data = _json(resp.body, resp.url)
        if not isinstance(data, dict) or not data.get("id"):
            raise ParseError(f"{resp.url}: the account lookup has no id")
        return str(data["id"])


def _parts(account: str) -> tuple[str, str]:
    m = _ACCOUNT.match(account)
    if not m:
        raise ValueError(f"not a fediverse address: {account!r}")
    return m.group("user"), m.group("domain").lower()


def _newer(a: str | None, b: str | None) -> str | None:
    """The newer of two status ids: numbers (snowflakes) by value, else as text."""
    if a is None or b is None:
        return a or b
    key = (lambda s: (0, int(s), "")) if a.isdigit() and b.isdigit() else (lambda s: (1, 0, s))
    return max(a, b, key=key)


# --- parsing --------------------------------------------------------------------------------


class StatusPage(NamedTuple):
    posts: list[Post]
    count: int  # statuses in the answer, before any is dropped
    newest_id: str | None
    oldest_id: str | None  # the `max_id` of the page of older statuses


def _json(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise ParseError(f"{url}: not JSON: {e}") from None


def parse_statuses(body: bytes, url: str = "", host: str = "") -> StatusPage:
    """The posts of a list of statuses (an account's, or a timeline) in the order given,
    newest first. `host` completes local account names (`user` → `user@host`)."""
    data = _json(body, url)
    if not isinstance(data, list):
        what = data.get("error") if isinstance(data, dict) else None
        raise ParseError(f"{url}: not a list of statuses" + (f" ({what})" if what else ""))
    posts = []
    for i, status in enumerate(data):
        if not isinstance(status, dict) or not isinstance(status.get("account"), dict):
            raise ParseError(f"{url}: status [{i}] has no account")
        posts.append(parse_status(status, host))
    ids = [str(s["id"]) for s in data if s.get("id") is not None]
    return StatusPage(posts, len(data), ids[0] if ids else None, ids[-1] if ids else None)


def parse_status(status: dict[str, Any], host: str = "") -> Post:
    """One status as a post; a boost becomes the boosted status, with the booster in extra."""
    boost = status.get("reblog") if isinstance(status.get("reblog"), dict) else None
    orig = boost or status
    extra: dict[str, Any] = {}
    if boost is not None:
        extra["boosted_by"] = account_name(status["account"], host)
        extra["boosted_at"] = parse_date(status.get("created_at"))
    parts = []
    spoiler = (orig.get("spoiler_text") or "").strip()
    if spoiler:
        # The content warning is part of what was published, and often the only summary.
        extra["spoiler_text"] = spoiler
        parts.append(f"CW: {spoiler}")
    # A deleted status comes back with its plain `text` source instead of `content`.
    parts.append(html_to_text(orig.get("content")) or (orig.get("text") or "").strip())
    poll = orig.get("poll")
    if isinstance(poll, dict) and poll.get("options"):
        parts.append("\n".join(f"- {o.get('title', '')}" for o in poll["options"]))
        extra["poll"] = [
            {"title": o.get("title"), "votes": o.get("votes_count")} for o in poll["options"]
        ]
    quoted = _quoted(orig.get("quote"))
    if quoted is not None:
        who = account_name(quoted.get("account") or {}, host)
        said = html_to_text(quoted.get("content"))
        extra["quote"] = {
            "url": quoted.get("url") or quoted.get("uri"),
            "author": who,
            "text": said,
        }
        # As for Bluesky: the quoted words go out under this account's name, so they are
        # searched with its text, set off as a quoted block.
        lines = said.splitlines() or [""]
        parts.append("\n".join([f"> {who}:", *(f"> {line}" for line in lines)]))
    media, kind = _attachments(orig.get("media_attachments") or [])
    card = orig.get("card")
    if isinstance(card, dict) and card.get("url"):
        extra["card"] = {
            k: card[k]
            for k in ("url", "title", "description", "type", "provider_name")
            if card.get(k)
        }
        media.append(Media(url=card["url"], role="link"))
        if card.get("image"):
            media.append(
                Media(url=card["image"], medium="image", width=card.get("width") or None,
                      height=card.get("height") or None, role="card")
            )  # fmt: skip
    for key in ("replies_count", "reblogs_count", "favourites_count"):
        if isinstance(orig.get(key), int):
            extra[key] = orig[key]
    if orig.get("in_reply_to_id"):
        extra["in_reply_to_id"] = str(orig["in_reply_to_id"])
    if orig.get("sensitive"):
        extra["sensitive"] = True
    if orig.get("edited_at"):
        extra["edited_at"] = parse_date(orig["edited_at"])
    tags = [t.get("name") for t in orig.get("tags") or [] if isinstance(t, dict) and t.get("name")]
    if tags:
        extra["tags"] = tags
    text = "\n\n".join(p for p in parts if p)
    return Post(
        external_id=str(orig.get("uri") or orig.get("url") or orig.get("id")),
        url=orig.get("url") or orig.get("uri"),
        text=text or None,
        author=account_name(orig["account"], host),
        kind=kind,
        published_at=parse_date(orig.get("created_at")),
        lang=orig.get("language") or None,
        media=tuple(media),
        extra=extra,
    )


def account_name(account: dict[str, Any], host: str = "") -> str:
    """`Display Name (@user@host)`, custom emoji shortcodes taken out of the name."""
    acct = account.get("acct") or account.get("username") or "unknown"
    if "@" not in acct:
        where = host or urlsplit(account.get("url") or "").netloc
        acct = f"{acct}@{where}" if where else acct
    name = account.get("display_name") or ""
    for emoji in account.get("emojis") or []:
        if isinstance(emoji, dict) and emoji.get("shortcode"):
            name = name.replace(f":{emoji['shortcode']}:", "")
    name = " ".join(name.split())
    return f"{name} (@{acct})" if name else f"@{acct}"


def _attachments(attachments: list[Any]) -> tuple[list[Media], Kind]:
    media: list[Media] = []
    kind: Kind = "post"
    for att in attachments:
        if not isinstance(att, dict):
            continue
        url = att.get("url") or att.get("remote_url")
        if not url:
            continue
        kind_of = att.get("type")
        meta = att.get("meta") or {}
        full = meta.get("original") or {}
        small = meta.get("small") or {}
        # gifv is a silent loop: shown as video, but nothing in it can be said.
        if kind_of == "video":
            kind = "video"
        medium = {"image": "image", "video": "video", "gifv": "video", "audio": "audio"}.get(
            kind_of or ""
        )
        media.append(
            Media(
                url=url,
                medium=medium,
                width=_int(full.get("width") or meta.get("width")),
                height=_int(full.get("height") or meta.get("height")),
                duration=_float(full.get("duration") or meta.get("duration")),
                role="content",
            )
        )
        preview = att.get("preview_url")
        # An audio file's "preview" is the file itself on some servers, not a picture.
        if preview and preview != url and not preview.lower().endswith(_AUDIO_EXT):
            media.append(
                Media(url=preview, medium="image", width=_int(small.get("width")),
                      height=_int(small.get("height")), role="thumbnail")
            )  # fmt: skip
    return media, kind


def _quoted(quote: Any) -> dict[str, Any] | None:
    """The status a Mastodon 4.5 quote post quotes, when it is shown (accepted)."""
    if not isinstance(quote, dict):
        return None
    quoted = quote.get("quoted_status")
    return (
        quoted
        if isinstance(quoted, dict) and quote.get("state", "accepted") == "accepted"
        else None
    )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
