"""I/O: the one shared async HTTP client — timeouts, size cap, politeness, conditional GET."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_UA = "outlet-monitor/0.1 (+https://github.com/outlet-monitor/outlet-monitor)"
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A request that did not give a usable answer; `str()` is the reason a user reads."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


@dataclass
class Response:
    url: str  # after redirects
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (now if now is not None else time.time()))


class Http:
    """One AsyncClient for the whole process, with a global and a per-host concurrency cap."""

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_UA,
        timeout: float = 20.0,
        max_body: int = 10_000_000,
        per_host: int = 2,
        max_connections: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_body = max_body
        self.per_host = per_host
        self._global = asyncio.Semaphore(max_connections)
        self._hosts: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self.per_host)
        )
        self.client = httpx.AsyncClient(
            headers={"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=32),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> Http:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get(
        self,
        url: str,
        *,
        state: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        max_body: int | None = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> Response:
        """GET `url`; with `state`, send and remember its ETag/Last-Modified (304 is a result).

        Raises FetchError for network errors, timeouts, oversize bodies and non-2xx answers
        (other than 304 and `ok_statuses`).
        """
        send_headers = dict(headers or {})
        validators = (state or {}).get("validators", {}).get(url, {})
        if validators.get("etag"):
            send_headers["If-None-Match"] = validators["etag"]
        if validators.get("last_modified"):
            send_headers["If-Modified-Since"] = validators["last_modified"]
        limit = max_body if max_body is not None else self.max_body
        deadline = timeout if timeout is not None else self.timeout
        host = urlsplit(url).hostname or ""
        async with self._global, self._hosts[host]:
            try:
                resp = await asyncio.wait_for(
                    self._fetch(url, send_headers, limit, deadline), deadline
                )
            except TimeoutError:
                raise FetchError(f"timed out after {deadline:g}s") from None
        if resp.status == 304 or 200 <= resp.status < 300 or resp.status in ok_statuses:
            if state is not None and 200 <= resp.status < 300:
                etag = resp.headers.get("etag")
                last_modified = resp.headers.get("last-modified")
                box = state.setdefault("validators", {})
                if etag or last_modified:
                    box[url] = {
                        k: v for k, v in (("etag", etag), ("last_modified", last_modified)) if v
                    }
                else:
                    box.pop(url, None)
            return resp
        reason = httpx.codes.get_reason_phrase(resp.status) or "error"
        retry_after = retry_after_seconds(resp.headers.get("retry-after"))
        msg = f"HTTP {resp.status} {reason}"
        if retry_after is not None and resp.status in (429, 503):
            msg += f" (Retry-After {retry_after:.0f}s)"
        raise FetchError(msg, status=resp.status, retry_after=retry_after)

    async def _fetch(
        self, url: str, headers: dict[str, str], limit: int, deadline: float
    ) -> Response:
        try:
            async with self.client.stream("GET", url, headers=headers, timeout=deadline) as resp:
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise FetchError(
                        f"response too large: {int(declared)} bytes declared, limit {limit}",
                        status=resp.status_code,
                    )
                chunks: list[bytes] = []
                size = 0
                # Counted while streaming, after decompression, so a gzip bomb stops at the cap.
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(
                            f"response too large: more than {limit} bytes", status=resp.status_code
                        )
                    chunks.append(chunk)
                return Response(str(resp.url), resp.status_code, resp.headers, b"".join(chunks))
        except FetchError:
            raise
        except httpx.TooManyRedirects:
            raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})") from None
        except httpx.TimeoutException as e:
            raise FetchError(f"timed out ({type(e).__name__})") from None
        except httpx.DecodingError as e:
            raise FetchError(f"could not decode the response: {e}") from None
        except httpx.InvalidURL as e:
            raise FetchError(f"invalid URL: {e}") from None
        except httpx.UnsupportedProtocol as e:
            raise FetchError(f"unsupported URL: {e}") from None
        except httpx.HTTPError as e:
            detail = str(e) or type(e).__name__
            raise FetchError(f"network error: {detail}") from None
