"""The `x` source's API backend: X API v2 user timeline, rate limits, and v2 responses → posts."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from monitor.errors import ParseError
from monitor.http import MAX_RETRY_AFTER, FetchError, Response
from monitor.models import Media, Post
from monitor.sources.base import Collected, FetchContext
from monitor.text import parse_date

if TYPE_CHECKING:
    from monitor.sources.x import XSource

# note_tweet is not in the list, but without it posts longer than 280 characters
# arrive cut short with a "show more" link instead of their text.
TWEET_FIELDS = (
    "created_at,lang,public_metrics,author_id,referenced_tweets,attachments,entities,"
    "conversation_id,note_tweet"
)
EXPANSIONS = "author_id,attachments.media_keys,referenced_tweets.id,referenced_tweets.id.author_id"
MEDIA_FIELDS = "type,url,preview_image_url,variants,duration_ms,width,height"
USER_FIELDS = "username,name"
MAX_PAGES = 10  # per fetch once since_id is known: 1,000 new posts at most between two fetches
DEFAULT_RATE_WAIT = 15 * 60.0  # X's rate-limit window, when a 429 carries no reset time

_STATUS_URL = re.compile(
    r"^https?://(?:www\.|mobile\.)?(?:twitter|x)\.com/(?:[^/?#]+|i/web|i)/status/(\d+)"
    r"(?:/(?:photo|video)/\d+)?/?(?:[?#].*)?$",
    re.I,
)
_RT_PREFIX = re.compile(r"^RT @(\w+): ")
_WIDTH_HEIGHT = re.compile(r"/(\d+)x(\d+)/")
# What a retweet says about itself rather than about the post it repeats.
_OWN_FIELDS = ("edit_history_tweet_ids", "conversation_id", "referenced_tweets", "created_at")


# --- pure: responses → records ---------------------------------------------------------------


@dataclass
class Page:
    """One page of a timeline: its posts, the newest tweet id in it and the next page's token."""

    posts: list[Post]
    newest_id: str | None
    next_token: str | None
    count: int  # tweets in `data`, before retweets are folded into their originals


def parse_user(body: bytes, handle: str) -> tuple[str, str]:
    """(user id, username as X spells it) from a `users/by/username/:handle` answer."""
    doc = _json(body, "user lookup")
    data = doc.get("data")
    if isinstance(data, dict) and data.get("id"):
        return str(data["id"]), str(data.get("username") or handle)
    raise ParseError(f"X API: no usable account @{handle}{_problems(doc) or ' (no data)'}")


def parse_timeline(body: bytes, username: str | None = None) -> Page:
    """A `users/:id/tweets` page; `username` names the author of tweets without includes."""
    doc = _json(body, "timeline")
    if "data" not in doc and "meta" not in doc:
        raise ParseError(f"X API: the timeline answer has no data{_problems(doc)}")
    posts = parse_response(doc, username)
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    ids = [str(t["id"]) for t in _tweets(doc) if t.get("id")]
    newest = meta.get("newest_id") or (max(ids, key=int) if ids else None)
    return Page(posts, str(newest) if newest else None, meta.get("next_token"), len(ids))


def parse_jsonl(body: bytes, username: str | None = None) -> list[Post]:
    """Posts of JSON Lines of v2 responses (twarc's format); a cut-off last line is dropped."""
    lines = body.decode("utf-8", errors="replace").split("\n")
    posts: list[Post] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as e:
            if number == len(lines):  # no newline after it: the writer stopped mid-line
                break
            raise ParseError(f"line {number}: not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise ParseError(f"line {number}: expected a JSON object")
        try:
            posts.extend(parse_response(doc, username))
        except ParseError as e:
            raise ParseError(f"line {number}: {e}") from None
    return posts


def parse_response(doc: dict[str, Any], username: str | None = None) -> list[Post]:
    """Posts of one v2 tweets response (`data` as a list or, from lookups and streams, one)."""
    idx = _Includes(doc.get("includes"))
    return [tweet_post(t, idx, username) for t in _tweets(doc)]


class _Includes:
    """The `includes` of a response, by id: who wrote what, which tweets and media are referenced."""

    def __init__(self, includes: Any) -> None:
        inc = includes if isinstance(includes, dict) else {}
        self.users = _by(inc.get("users"), "id")
        self.tweets = _by(inc.get("tweets"), "id")
        self.media = _by(inc.get("media"), "media_key")

    def username(self, tweet: dict[str, Any]) -> str | None:
        user = self.users.get(str(tweet.get("author_id")))
        return str(user["username"]) if user and user.get("username") else None


def tweet_post(tweet: dict[str, Any], idx: _Includes, username: str | None = None) -> Post:
    """One tweet as a post; a retweet becomes its original, with the reposting account in extra."""
    refs = _refs(tweet)
    extra: dict[str, Any] = {}
    own_author = idx.username(tweet) or username
    shown, author = tweet, own_author
    rt_id = refs.get("retweeted")
    if rt_id:
        extra["reposted_by"] = own_author
        extra["repost_id"] = str(tweet["id"])
        extra["reposted_at"] = parse_date(tweet.get("created_at"))
        original = idx.tweets.get(rt_id)
        if original is not None:
            shown, author = original, idx.username(original)
            refs = _refs(original)
        else:  # deleted, withheld or not expanded: all there is is the cut "RT @x: …" text
            m = _RT_PREFIX.match(tweet.get("text") or "")
            text = (tweet.get("text") or "")[m.end() if m else 0 :]
            shown = {k: v for k, v in tweet.items() if k not in _OWN_FIELDS}
            shown = {**shown, "id": rt_id, "text": text, "created_at": _snowflake_time(rt_id)}
            author = m.group(1) if m else None
            extra["truncated"] = True
    tweet_id = str(shown["id"])
    history = [str(i) for i in shown.get("edit_history_tweet_ids") or ()]
    if len(history) > 1:
        extra["edit_history"] = history
    extra["id"] = tweet_id
    if shown.get("conversation_id"):
        extra["conversation_id"] = str(shown["conversation_id"])
    if isinstance(user := idx.users.get(str(shown.get("author_id"))), dict) and user.get("name"):
        extra["author_name"] = user["name"]
    if "replied_to" in refs:
        extra["in_reply_to_id"] = refs["replied_to"]
        parent = idx.tweets.get(refs["replied_to"])
        if parent and idx.username(parent):
            extra["reply_to"] = idx.username(parent)
    text = _text(shown, set(history) | {tweet_id})
    quote_block = None
    if "quoted" in refs:
        extra["quoted_id"] = refs["quoted"]
        quoted = idx.tweets.get(refs["quoted"])
        quoted_author = idx.username(quoted) if quoted else None
        extra["quoted_url"] = _status_url(quoted_author, refs["quoted"])
        if quoted is not None:
            said = _text(quoted, {refs["quoted"]})
            who = f"@{quoted_author}" if quoted_author else "quoted post"
            extra["quote"] = {"url": extra["quoted_url"], "author": who, "text": said}
            # As for Bluesky and Mastodon: the quoted words go out under this account's
            # name, so an alert searches them too, set off as a quoted block.
            lines = said.splitlines() or [""]
            quote_block = "\n".join([f"> {who}:", *(f"> {line}" for line in lines)])
    if quote_block:
        text = f"{text}\n\n{quote_block}" if text else quote_block
    card = _card(shown)
    if card is not None:
        extra["card"] = card

    objects = _media_objects(shown, tweet, idx)
    media, has_video = _media(objects)
    if card is not None and card.get("image"):
        media += (Media(card.pop("image"), "image", role="card"),)
    metrics = dict(shown.get("public_metrics") or {})
    views = [(m.get("public_metrics") or {}).get("view_count") for m in objects]
    if any(v is not None for v in views):
        metrics["view_count"] = max(v for v in views if v is not None)
    if metrics:
        extra["metrics"] = metrics
    published = parse_date(shown.get("created_at"))
    if history and history[0] != tweet_id:
        # An edit is a new tweet with a new time; the post was published with its first
        # version, whose id carries that time when the first version is not in includes.
        first = idx.tweets.get(history[0])
        extra["edited_at"] = published
        published = parse_date((first or {}).get("created_at")) or _snowflake_time(history[0])
    return Post(
        external_id=history[0] if history else tweet_id,  # edits share the first version's id
        url=_status_url(author, tweet_id),
        title=None,
        text=text or None,
        author=f"@{author}" if author else None,
        kind="video" if has_video else "post",
        published_at=published,
        lang=_lang(shown.get("lang")),
        media=media,
        extra=extra,
    )


def _refs(tweet: dict[str, Any]) -> dict[str, str]:
    """referenced_tweets by type: "retweeted", "quoted", "replied_to" → tweet id."""
    return {str(r.get("type")): str(r.get("id")) for r in tweet.get("referenced_tweets") or ()}


def _tweets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    data = doc.get("data")
    if data is None:
        return []
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, dict) or "id" not in item or "text" not in item:
            raise ParseError("not an X API v2 tweets response: `data` holds no tweets")
    return items


def _snowflake_time(tweet_id: str) -> str | None:
    """When a post was made, from its id (X ids since 2010 carry their millisecond time)."""
    try:
        ms = (int(tweet_id) >> 22) + 1288834974657
    except ValueError:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _by(items: Any, key: str) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {str(i[key]): i for i in items if isinstance(i, dict) and i.get(key) is not None}


def _status_url(username: str | None, tweet_id: str) -> str:
    # x.com/i/status/<id> redirects to the right account when the author is not known.
    return f"https://x.com/{username or 'i'}/status/{tweet_id}"


def _card(tweet: dict[str, Any]) -> dict[str, str] | None:
    """The link preview X made for the first link it could read (title, description, image)."""
    entities = tweet.get("entities") or {}
    for u in entities.get("urls") or ():
        if not isinstance(u, dict) or not u.get("title"):
            continue
        card = {"url": str(u.get("unwound_url") or u.get("expanded_url") or u.get("url"))}
        card.update({k: str(u[k]) for k in ("title", "description") if u.get(k)})
        # The largest of the sizes X offers.
        images = [i for i in u.get("images") or () if isinstance(i, dict) and i.get("url")]
        if images:
            card["image"] = str(max(images, key=lambda i: _int(i.get("width")) or 0)["url"])
        return card
    return None


def _text(tweet: dict[str, Any], own_ids: set[str]) -> str:
    """The full text with t.co links expanded and links to the tweet's own media dropped."""
    note = tweet.get("note_tweet")
    if isinstance(note, dict) and note.get("text"):
        text, entities = str(note["text"]), note.get("entities") or {}
    else:
        text, entities = str(tweet.get("text") or ""), tweet.get("entities") or {}
    # Replacing by value, not by start/end: indices count code points of the unescaped text
    # while `text` arrives with &amp; escapes, and the same link may appear twice.
    for u in entities.get("urls") or ():
        short = u.get("url")
        if not short or short not in text:
            continue
        target = u.get("unwound_url") or u.get("expanded_url") or short
        m = _STATUS_URL.match(target)
        own = u.get("media_key") or (m is not None and m.group(1) in own_ids)
        text = text.replace(short, "" if own else target)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    lines = [re.sub(r"[ \t]{2,}", " ", line).strip() for line in text.split("\n")]
    return "\n".join(lines).strip()


def _lang(code: Any) -> str | None:
    # X's own codes for "no language": und, zxx, and q-codes (qme media only, qst very short,
    # qam mentions only, qht hashtags only, qct cashtags only).
    if not isinstance(code, str) or not code or code in ("und", "zxx") or code[:1] == "q":
        return None
    return code


def _media_objects(shown: dict, tweet: dict, idx: _Includes) -> list[dict[str, Any]]:
    # A retweet carries its original's media keys, and the original's own are only in includes
    # when X chose to expand them, so both are looked up.
    keys: list[str] = []
    for t in (shown, tweet):
        for key in (t.get("attachments") or {}).get("media_keys") or ():
            if str(key) not in keys:
                keys.append(str(key))
    return [idx.media[k] for k in keys if k in idx.media]


def _media(objects: list[dict[str, Any]]) -> tuple[tuple[Media, ...], bool]:
    """Media entries (photos; every variant of a video or GIF) and whether there is a video."""
    out: list[Media] = []
    has_video = False
    for m in objects:
        kind = m.get("type")
        width, height = _int(m.get("width")), _int(m.get("height"))
        if kind == "photo" and m.get("url"):
            out.append(Media(m["url"], "image", width=width, height=height, role="content"))
            continue
        if kind not in ("video", "animated_gif"):
            continue
        # A GIF is a silent loop: kept as video media, but the post is no video to transcribe.
        has_video = has_video or kind == "video"
        duration = m["duration_ms"] / 1000 if isinstance(m.get("duration_ms"), int) else None
        variants = [v for v in m.get("variants") or () if isinstance(v, dict) and v.get("url")]
        # Best first: mp4 by bitrate, then the HLS playlist that adapts to any of them.
        variants.sort(
            key=lambda v: (v.get("content_type") != "video/mp4", -(v.get("bit_rate") or 0))
        )
        for v in variants:
            wh = _WIDTH_HEIGHT.search(v["url"])
            vw, vh = (int(wh.group(1)), int(wh.group(2))) if wh else (width, height)
            out.append(
                Media(v["url"], "video", v.get("content_type"), vw, vh, duration, role="variant")
            )
        if m.get("preview_image_url"):
            out.append(
                Media(m["preview_image_url"], "image", width=width, height=height, role="thumbnail")
            )
    return tuple(out), has_video


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"X API {what}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ParseError(f"X API {what}: expected a JSON object")
    return doc


def _problems(doc: dict[str, Any]) -> str:
    """`: title: detail; ...` from the `errors` of a 200 answer, or the problem body of an error."""
    errors = doc.get("errors") if isinstance(doc.get("errors"), list) else [doc]
    parts = []
    for e in errors:
        if isinstance(e, dict):
            said = ": ".join(str(e[k]) for k in ("title", "detail") if e.get(k))
            if e.get("required_enrollment"):  # a 403 naming the access level it wants
                said += f" [required: {e['required_enrollment']}]"
            if said and said not in parts:
                parts.append(said)
    return f" ({'; '.join(parts)})" if parts else ""


# --- pure: status codes and headers → errors and waits ----------------------------------------


def rate_limit(headers: Any, now: float) -> tuple[int | None, float | None]:
    """(x-rate-limit-remaining, x-rate-limit-reset as epoch seconds) when X sends them.

    The reset is held to a day from `now`, as Retry-After is: a broken or hostile answer must
    not silence the account for years.
    """

    def number(name: str) -> float | None:
        try:
            return float(str(headers.get(name)).strip())
        except (TypeError, ValueError):
            return None

    remaining = number("x-rate-limit-remaining")
    reset = number("x-rate-limit-reset")
    if reset is not None:
        reset = min(reset, now + MAX_RETRY_AFTER)
    return (int(remaining) if remaining is not None else None), reset


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def api_error(resp: Response, endpoint: str, handle: str, now: float) -> FetchError:
    """The FetchError a user reads for a 401, 403 or 429 from the X API."""
    try:
        detail = _problems(_json(resp.body, endpoint))
    except ParseError:
        detail = ""
    if resp.status == 429:
        _, reset = rate_limit(resp.headers, now)
        if reset is not None:
            return FetchError(
                f"rate limited by the X API until {utc(reset)} (x-rate-limit-reset)",
                status=429,
                retry_after=max(0.0, reset - now),
            )
        return FetchError(
            "rate limited by the X API (HTTP 429 without x-rate-limit-reset; "
            f"waiting {DEFAULT_RATE_WAIT / 60:.0f} min)",
            status=429,
            retry_after=DEFAULT_RATE_WAIT,
        )
    if resp.status == 401:
        return FetchError(
            f"X API rejected the bearer token (HTTP 401{detail}): `bearer_token` is wrong, "
            "expired or revoked — create a new one in the X developer portal",
            status=401,
        )
    return FetchError(
        f"X API refused {endpoint} (HTTP 403{detail}): the bearer token's access tier does "
        f"not include this endpoint, or @{handle} is protected or suspended",
        status=403,
    )


# --- I/O: the fetch loop ---------------------------------------------------------------------


async def collect_api(cfg: XSource, ctx: FetchContext) -> Collected:
    """Look the account up once, then read its timeline: bounded on the first fetch, since_id after."""
    now = time.time()
    until = ctx.state.get("rate_limited_until")
    if isinstance(until, int | float) and until > now:
        ctx.log.append(f"X API rate limit used up: not asking again until {utc(until)}")
        return Collected([], not_modified=True)
    ctx.state.pop("rate_limited_until", None)
    client = _Client(cfg, ctx)
    user_id, username = await _user(cfg, ctx, client)
    since = ctx.state.get("since_id")
    per_request = min(100, max(5, cfg.max_results))
    posts: list[Post] = []
    newest = since
    token: str | None = None
    tweets = 0
    pages = 0
    while True:
        pages += 1
        wanted = per_request if since else min(100, max(5, cfg.max_results - tweets))
        params = {
            "max_results": str(wanted),
            "tweet.fields": TWEET_FIELDS,
            "expansions": EXPANSIONS,
            "media.fields": MEDIA_FIELDS,
            "user.fields": USER_FIELDS,
        }
        exclude = [k for k, on in (("replies", cfg.include_replies),
                                   ("retweets", cfg.include_retweets)) if not on]  # fmt: skip
        if exclude:
            params["exclude"] = ",".join(exclude)
        if since:
            params["since_id"] = since
        if token:
            params["pagination_token"] = token
        resp = await client.get(
            f"/users/{user_id}/tweets", params, "GET /2/users/:id/tweets", watch_limit=True
        )
        page = parse_timeline(resp.body, username)
        posts.extend(page.posts)
        tweets += page.count
        if page.newest_id and (newest is None or int(page.newest_id) > int(newest)):
            newest = page.newest_id
        token = page.next_token
        if not token or client.exhausted or (not since and tweets >= cfg.max_results):
            break
        if pages >= MAX_PAGES:
            if since:
                ctx.log.append(
                    f"more than {pages * per_request} new posts since the last fetch; "
                    "the older ones were not collected"
                )
            break
    if newest:
        ctx.state["since_id"] = str(newest)
    if not since:
        posts = posts[: cfg.max_results]
    return Collected(posts, http_status=client.status)


async def _user(cfg: XSource, ctx: FetchContext, client: _Client) -> tuple[str, str]:
    cached = ctx.state.get("user")
    if isinstance(cached, dict) and cached.get("handle") == cfg.username.lower():
        return str(cached["id"]), str(cached["username"])
    resp = await client.get(
        f"/users/by/username/{quote(cfg.username)}",
        {"user.fields": USER_FIELDS},
        "GET /2/users/by/username/:username",
    )
    user_id, username = parse_user(resp.body, cfg.username)
    ctx.state["user"] = {"handle": cfg.username.lower(), "id": user_id, "username": username}
    ctx.state.pop("since_id", None)  # another account's newest id means nothing here
    return user_id, username


class _Client:
    """GETs to the API with the token, mapping X's errors and watching the rate-limit headers."""

    def __init__(self, cfg: XSource, ctx: FetchContext) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.base = cfg.api_base.rstrip("/")
        self.exhausted = False
        self.status: int | None = None

    async def get(
        self, path: str, params: dict[str, str], endpoint: str, *, watch_limit: bool = False
    ) -> Response:
        url = f"{self.base}{path}?{urlencode(params, safe=',')}" if params else self.base + path
        headers = {"Authorization": f"Bearer {self.cfg.bearer_token}", "Accept": "application/json"}
        try:
            resp = await self.ctx.http.get(
                url, headers=headers, timeout=self.ctx.timeout, ok_statuses=(401, 403, 429)
            )
        except FetchError as e:
            raise FetchError(
                self._redact(f"X API {endpoint}: {e}"), e.status, e.retry_after
            ) from None
        if resp.status in (401, 403, 429):
            err = api_error(resp, endpoint, self.cfg.username, time.time())
            raise FetchError(self._redact(str(err)), err.status, err.retry_after)
        self.status = resp.status
        remaining, reset = rate_limit(resp.headers, time.time())
        # Each endpoint has its own window; only the timeline's decides when to poll again
        # (the user lookup happens once and is cached).
        if watch_limit and remaining == 0 and reset is not None:
            self.exhausted = True
            self.ctx.state["rate_limited_until"] = reset
            self.ctx.log.append(
                f"X API rate limit used up until {utc(reset)}: fetches before then are skipped"
            )
        return resp

    def _redact(self, message: str) -> str:
        token = self.cfg.bearer_token or ""
        # The token must never reach `monitor sources` or a log, even if X echoes it back.
        return message.replace(token, "[bearer_token]") if len(token) >= 4 else message
