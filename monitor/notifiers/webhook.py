"""The webhook notifier: a JSON POST per match (or per digest), signed per Standard Webhooks."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from monitor.http import MAX_RETRY_AFTER, retry_after_seconds
from monitor.notifiers import message
from monitor.notifiers.base import DeliveryError, NotifierConfig

if TYPE_CHECKING:
    from monitor.http import Http

SECRET_PREFIX = "whsec_"
RESERVED_HEADERS = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")
ERROR_EXCERPT = 200  # characters of a failed answer's body kept in the reason

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 header field name


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (or of bare base64); ValueError if malformed."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "not valid base64; write it as whsec_ followed by the base64 of the key"
        ) from None
    if not key:
        raise ValueError("is empty after the whsec_ prefix")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def encode_body(payloads: list[dict[str, Any]]) -> bytes:
    """The JSON body: the payload itself, or for a digest `{"type": "digest", "matches": [...]}`.

    Always valid UTF-8 JSON, whatever the posts contain (lone surrogates, NaN, odd types).
    """
    doc: Any = payloads[0] if len(payloads) == 1 else {"type": "digest", "matches": payloads}
    text = json.dumps(message.scrub(doc), ensure_ascii=False, allow_nan=False, default=str)
    return text.encode("utf-8")


@dataclass(frozen=True, kw_only=True)
class WebhookNotifier(NotifierConfig):
    """`type = "webhook"`: where to POST, and the secret that signs each delivery."""

    url: str
    secret: str | None = None  # whsec_<base64 key>, as Standard Webhooks writes it
    headers: dict[str, str] = field(default_factory=dict)  # extra headers, e.g. Authorization

    def validate(self) -> list[str]:
        problems = []
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"url: must be an http:// or https:// URL, got {self.url!r}")
        if self.secret is not None:
            try:
                secret_key(self.secret)
            except ValueError as e:
                problems.append(f"secret: {e}")
        for name, value in self.headers.items():
            if not _TOKEN.fullmatch(name):
                problems.append(f"headers: {name!r} is not a valid header name")
            elif name.lower() in RESERVED_HEADERS:
                problems.append(f"headers: {name!r} is set by the notifier itself")
            if message.one_line(value) != value.strip():
                problems.append(f"headers: the value of {name!r} has a line break or control")
        return problems

    async def send(
        self,
        payloads: list[dict[str, Any]],
        delivery_id: str,
        http: Http,
        *,
        reached: frozenset[str] = frozenset(),  # one target: never partly sent
    ) -> None:
        body = encode_body(payloads)
        timestamp = int(time.time())
        headers = {
            **self.headers,
            "content-type": "application/json; charset=utf-8",
            "webhook-id": str(delivery_id),
            "webhook-timestamp": str(timestamp),
        }
        if self.secret:
            headers["webhook-signature"] = sign(self.secret, str(delivery_id), timestamp, body)
        try:
            status, reason_phrase, retry_after, excerpt = await asyncio.wait_for(
                self._post(http.client, body, headers), self.timeout
            )
        except TimeoutError:
            raise DeliveryError(f"timed out after {self.timeout:g}s") from None
        except httpx.TimeoutException as e:
            raise DeliveryError(f"timed out ({type(e).__name__})") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            raise DeliveryError(f"invalid URL: {e}") from None
        except httpx.HTTPError as e:
            raise DeliveryError(f"network error: {str(e) or type(e).__name__}") from None
        if 200 <= status < 300:
            return
        reason = f"HTTP {status} {reason_phrase}"
        if retry_after is not None:
            # The wait the outbox applies, held to a day as a source's is, not the one asked.
            retry_after = min(retry_after, MAX_RETRY_AFTER)
            reason += f" (Retry-After {retry_after:.0f}s)"
        if excerpt:
            reason += f": {excerpt}"
        raise DeliveryError(reason, retry_after=retry_after)

    async def _post(
        self, client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, float | None, str]:
        """POST and return status, reason phrase, Retry-After, and a short excerpt on failure."""
        # Redirects are not followed: on 301/302 httpx would re-send as a bodiless GET and a
        # 200 from there would count as delivered.
        async with client.stream(
            "POST",
            self.url,
            content=body,
            headers=headers,
            timeout=self.timeout,
            follow_redirects=False,
        ) as resp:
            status = resp.status_code
            phrase = resp.reason_phrase or httpx.codes.get_reason_phrase(status) or "error"
            if 200 <= status < 300:
                return status, phrase, None, ""
            retry_after = retry_after_seconds(resp.headers.get("retry-after"))
            if 300 <= status < 400 and resp.headers.get("location"):
                return status, phrase, retry_after, f"redirects to {resp.headers['location']}"
            # Only the start of the answer is read: a receiver's error page can be huge.
            chunks = bytearray()
            async for chunk in resp.aiter_bytes():
                chunks += chunk
                if len(chunks) >= ERROR_EXCERPT * 4:
                    break
            text = bytes(chunks).decode("utf-8", "replace")
            return (
                status,
                phrase,
                retry_after,
                message.truncate(message.one_line(text), ERROR_EXCERPT),
            )
