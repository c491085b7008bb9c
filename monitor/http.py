"""I/O: the one shared HTTP client — deadlines, size cap, politeness, redirects, SSRF guard."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from monitor.netguard import BlockedURL, check_url
from monitor.transport import Transport

DEFAULT_UA = "outlet-monitor/0.1 (+https://github.com/outlet-monitor/outlet-monitor)"
MAX_REDIRECTS = 5
MAX_CONNECT = 10.0  # seconds to open a connection, when the fetch's own timeout is longer
# A server's Retry-After is honoured up to a day: a hostile or broken one must not be able to
# silence a source for months.
MAX_RETRY_AFTER = 86_400.0
REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT = (301, 308)
# Sent to the same origin only: a redirect elsewhere must not carry the source's token.
_CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


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
    # Where the requested URL has moved, when every redirect on the way was permanent (301,
    # 308): the address to configure instead. None after a temporary redirect, or none.
    moved_to: str | None = None

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
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # "-0000" or no zone at all: HTTP dates are GMT, never the zone this machine is set to.
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


# The deadline of the collection this request belongs to (see `collection_deadline`).
_collection: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "collection_deadline", default=None
)


@contextlib.asynccontextmanager
async def collection_deadline(seconds: float) -> AsyncIterator[None]:
    """Bound a whole collection (several requests and their parsing) to `seconds` of work.

    Time a request spends queued for a free slot (`per_host`, `concurrency`) is not work: it
    is added back, so the sources at the back of a busy host's queue are not failed for
    waiting their turn. Raises TimeoutError like `asyncio.timeout`.
    """
    async with asyncio.timeout(seconds) as scope:
        token = _collection.set(scope)
        try:
            yield
        finally:
            _collection.reset(token)


def _extend_collection_deadline(waited: float) -> None:
    scope = _collection.get()
    when = scope.when() if scope is not None else None
    if scope is not None and when is not None and waited > 0.001 and not scope.expired():
        scope.reschedule(when + waited)


class Http:
    """One AsyncClient for the whole process, with a global and a per-host concurrency cap.

    Requests are trusted (a URL the user configured: fetched as given, even on loopback or a
    private network) or not (a URL found in content: article links, caption and media URLs).
    Untrusted URLs, and every redirect that leaves a trusted URL's origin, must resolve to
    public addresses unless `allow_private`; this is checked when connecting, on the address
    actually connected to. Redirects are followed here, hop by hop, so each hop is checked.
    """

    def __init__(
        self,
        *,
        user_agent: str = DEFAULT_UA,
        timeout: float = 20.0,
        max_body: int = 10_000_000,
        per_host: int = 2,
        max_connections: int = 32,
        allow_private: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Callable[[Response], None] | None = None,
    ) -> None:
        """`observe` sees each answer as it is accepted: redirect hops one by one, bodies
        decoded and within the cap (`monitor record` saves them)."""
        self.timeout = timeout
        self.max_body = max_body
        self.per_host = per_host
        self.allow_private = allow_private
        self.observe = observe
        self.fetching = 0  # calls of `get` not yet answered: none once a pass has its documents
        self._global = asyncio.Semaphore(max_connections)
        # host → (its semaphore, requests holding or awaiting it); dropped when idle, since
        # links from content bring a stream of new hosts over months of running.
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}
        options: dict[str, Any] = {
            "headers": {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"},
            "timeout": httpx.Timeout(timeout, connect=min(timeout, MAX_CONNECT)),
            "follow_redirects": False,
        }
        if transport is None and not _proxied():
            transport = Transport()
        # `client` is also the notifiers' client (webhooks are configured URLs, so trusted).
        # Without a transport of ours, httpx's own one goes through HTTP(S)_PROXY.
        self.client = httpx.AsyncClient(transport=transport, **options)
        self.client._cookies = _Cookies()  # the setter would copy it into a plain Cookies
        self._options = options
        self._guarded_client: httpx.AsyncClient | None = None
        if (transport is not None and not isinstance(transport, Transport)) or allow_private:
            # A test or replay transport decides itself where requests go; the literal-address
            # check before each request still applies to it.
            self._guarded_client = self.client

    @property
    def _guarded(self) -> httpx.AsyncClient:
        # Its own transport, never through a proxy: the guard must see the address it
        # connects to, and through a proxy it would only see the proxy.
        if self._guarded_client is None:
            self._guarded_client = httpx.AsyncClient(
                transport=Transport(guard=True), trust_env=False, **self._options
            )
            self._guarded_client._cookies = _Cookies()
        return self._guarded_client

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._guarded_client is not None and self._guarded_client is not self.client:
            await self._guarded_client.aclose()

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
        trusted: bool = True,
    ) -> Response:
        """GET `url`; with `state`, send and remember its ETag/Last-Modified (304 is a result).

        `timeout` bounds the whole fetch, redirects and body included. `trusted=False` for
        URLs that came from fetched content. Raises FetchError for refused URLs, network
        errors, timeouts, oversize bodies, redirect loops and non-2xx answers (other than 304
        and `ok_statuses`).
        """
        send_headers = dict(headers or {})
        validators = (state or {}).get("validators", {}).get(url, {})
        if validators.get("etag"):
            send_headers["If-None-Match"] = validators["etag"]
        if validators.get("last_modified"):
            send_headers["If-Modified-Since"] = validators["last_modified"]
        limit = max_body if max_body is not None else self.max_body
        deadline = timeout if timeout is not None else self.timeout
        self.fetching += 1
        try:
            resp = await self._follow(url, send_headers, limit, deadline, trusted)
        finally:
            self.fetching -= 1
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
        if retry_after is not None:
            retry_after = min(retry_after, MAX_RETRY_AFTER)
        msg = f"HTTP {resp.status} {reason}"
        if resp.status in REDIRECTS:
            msg += " without a Location header" if "location" not in resp.headers else ""
        if retry_after is not None and resp.status in (429, 503):
            msg += f" (Retry-After {retry_after:.0f}s)"
        raise FetchError(msg, status=resp.status, retry_after=retry_after)

    async def _follow(
        self, url: str, headers: dict[str, str], limit: int, deadline: float, trusted: bool
    ) -> Response:
        """Fetch `url` following at most MAX_REDIRECTS redirects, checking every hop."""
        started: float | None = None  # the deadline runs from the first slot, not the queue
        current = url
        permanent = True  # every redirect so far was 301 or 308
        home = _origin(url) if trusted else None
        for hop in range(MAX_REDIRECTS + 1):
            # A configured URL is trusted, and so is its own origin; anywhere else it sends us
            # is content steering the monitor, checked like any URL found in a document.
            guarded = not self.allow_private and _origin(current) != home
            try:
                host = check_url(current) if guarded else _host(current)
            except BlockedURL as e:
                raise FetchError(_refused(url, current, hop, e)) from None
            # The host's slot, inline rather than an async context manager: a generator and
            # its frames per request, on the path of every poll.
            semaphore, users = self._hosts.get(host) or self._hosts.setdefault(
                host, (asyncio.Semaphore(self.per_host), [0])
            )
            users[0] += 1
            try:
                queued = time.monotonic()
                async with semaphore, self._global:
                    _extend_collection_deadline(time.monotonic() - queued)
                    if started is None:
                        started = time.monotonic()
                    remaining = deadline - (time.monotonic() - started)
                    if remaining <= 0:
                        raise FetchError(f"timed out after {deadline:g}s")
                    client = self._guarded if guarded else self.client
                    try:
                        async with asyncio.timeout(remaining):
                            resp = await self._fetch(client, current, headers, limit, remaining)
                    except TimeoutError:
                        raise FetchError(f"timed out after {deadline:g}s") from None
                    except BlockedURL as e:
                        raise FetchError(_refused(url, current, hop, e)) from None
            finally:
                users[0] -= 1
                if not users[0]:
                    del self._hosts[host]
            if self.observe is not None:
                self.observe(resp)
            target = resp.headers.get("location") if resp.status in REDIRECTS else None
            if target is None:
                if hop and permanent and current != url:
                    resp.moved_to = current
                return resp
            permanent = permanent and resp.status in PERMANENT
            try:
                following = str(httpx.URL(current).join(target.strip()))
            except (httpx.InvalidURL, ValueError) as e:
                raise FetchError(f"redirect to an invalid URL {target!r}: {e}") from None
            if _origin(following) != _origin(current):
                headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
            current = following
        raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}), last to {current}")

    async def _fetch(
        self,
        client: httpx.AsyncClient,
        url: str,
        headers: dict[str, str],
        limit: int,
        remaining: float,
    ) -> Response:
        timeout = httpx.Timeout(remaining, connect=min(remaining, MAX_CONNECT))
        try:
            async with client.stream("GET", _parsed(url), headers=headers, timeout=timeout) as resp:
                if resp.status_code in REDIRECTS and "location" in resp.headers:
                    # The body of a redirect is never read: it can be as hostile as any other.
                    return Response(str(resp.url), resp.status_code, resp.headers, b"")
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise FetchError(
                        f"response too large: {int(declared)} bytes declared, limit {limit}",
                        status=resp.status_code,
                    )
                body = await _read_capped(resp, limit)
                return Response(str(resp.url), resp.status_code, resp.headers, body)
        except (FetchError, BlockedURL):
            raise
        except httpx.ConnectTimeout:
            raise FetchError(f"timed out connecting ({min(remaining, MAX_CONNECT):g}s)") from None
        except httpx.ReadTimeout:
            raise FetchError(f"timed out: no data for {remaining:g}s") from None
        except httpx.TimeoutException as e:
            raise FetchError(f"timed out ({type(e).__name__})") from None
        except httpx.InvalidURL as e:
            raise FetchError(f"invalid URL: {e}") from None
        except httpx.UnsupportedProtocol as e:
            raise FetchError(f"unsupported URL: {e}") from None
        except httpx.RemoteProtocolError as e:
            raise FetchError(
                f"broken HTTP response: {_short(str(e)) or 'protocol error'}"
            ) from None
        except httpx.HTTPError as e:
            raise FetchError(f"network error: {_network_reason(e)}") from None


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads an answer only when it sets a cookie.

    httpx hands every answer to the standard library's cookie jar, which builds a
    urllib request and an email message of the headers to find none in nearly all of
    them: about a tenth of the CPU of a conditional GET answered 304 (bench_daemon.py).
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


def _proxied() -> bool:
    """Whether the environment names a proxy (httpx's own transport is the one that uses it)."""
    from urllib.request import getproxies  # what httpx reads the environment with

    return any(getproxies().get(scheme) for scheme in ("http", "https", "all"))


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _network_reason(e: BaseException) -> str:
    """The most telling message in the exception's chain: httpx's ReadError on a reset says
    nothing, the ConnectionResetError under it says "Connection reset by peer"."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower() if seen is not e else str(seen)
        seen = seen.__cause__ or seen.__context__
    return _short(str(e)) or f"connection failed ({type(e).__name__})"


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs are on the same host and port — for a source deciding that a URL found
    in its own configured server's content (a sitemap's children) can be fetched as trusted."""
    return _origin(a) is not None and _origin(a) == _origin(b)


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    # httpx's URL parser is thorough and slow (~25 µs); the same URLs come back every pass.
    return httpx.URL(url)


def _origin(url: str) -> tuple[str, int | None] | None:
    """(host, port) — what a redirect may keep and still be the configured server."""
    try:
        u = _parsed(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return (u.host.lower().rstrip("."), port) if u.host else None


def _host(url: str) -> str:
    """The host of a trusted URL; only the scheme is checked."""
    try:
        u = _parsed(url)
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise BlockedURL(f"invalid URL: {e}") from None
    if u.scheme not in ("http", "https"):
        raise BlockedURL(f"refusing a {u.scheme}: URL (only http and https are fetched)")
    return u.host


def _refused(url: str, current: str, hop: int, e: BlockedURL) -> str:
    if hop:
        return f"refused redirect from {url} to {current}: {e}"
    return f"refused {url}: {e}"


async def _read_capped(resp: httpx.Response, limit: int) -> bytes:
    """The decoded body, refusing more than `limit` bytes while they arrive.

    Decoded here rather than by httpx so the cap holds inside each network chunk too: httpx
    inflates a whole chunk at once, and 64 KB of gzip can inflate to 64 MB.
    """
    if resp.is_stream_consumed:
        # Built in memory by a replay or mock transport, and already decoded by httpx.
        if len(resp.content) > limit:
            raise FetchError(
                f"response too large: more than {limit} bytes", status=resp.status_code
            )
        return resp.content
    decoders = _decoders(resp.headers.get("content-encoding", ""))
    chunks: list[bytes] = []
    size = 0

    def take(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise FetchError(
                f"response too large: more than {limit} bytes", status=resp.status_code
            )
        chunks.append(data)

    async for raw in resp.aiter_raw():
        data = raw
        for decoder in decoders:
            data = decoder.feed(data, limit - size + 1)
        take(data)
    for i, decoder in enumerate(decoders):
        data = decoder.flush()
        for after in decoders[i + 1 :]:
            data = after.feed(data, limit - size + 1)
        take(data)
    return b"".join(chunks)


class _Inflate:
    """gzip or deflate, stopping once more than the room left has come out."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self.started = False
        self.done = False
        self.obj = zlib.decompressobj(wbits=31 if gzip else 15)

    def feed(self, data: bytes, room: int) -> bytes:
        out = bytearray()
        while data and not self.done and len(out) < room:
            if self.obj.eof:
                # Another gzip member continues the body; anything else after the end is
                # trailing junk, ignored as httpx ignores it.
                if not (self.gzip and data[:2] == b"\x1f\x8b"):
                    self.done = True
                    break
                self.obj = zlib.decompressobj(wbits=31)
            try:
                out += self.obj.decompress(data, room - len(out))
            except zlib.error as e:
                if not self.gzip and not self.started:
                    # "deflate" is zlib-wrapped by the RFC but raw from some servers.
                    self.obj = zlib.decompressobj(wbits=-15)
                    self.started = True
                    continue
                raise FetchError(f"could not decode the response: {e}") from None
            self.started = True
            data = self.obj.unused_data if self.obj.eof else self.obj.unconsumed_tail
        return bytes(out)

    def flush(self) -> bytes:
        if self.done or self.obj.eof:
            return b""
        try:
            return self.obj.flush()
        except zlib.error as e:
            raise FetchError(f"could not decode the response: {e}") from None


def _decoders(content_encoding: str) -> list[_Inflate]:
    # Applied in the reverse of the order they are listed; unknown codings are passed through
    # undecoded (the parser then fails on them), as httpx does.
    names = [v.strip().lower() for v in content_encoding.split(",") if v.strip()]
    out = []
    for name in reversed(names):
        if name in ("gzip", "x-gzip"):
            out.append(_Inflate(gzip=True))
        elif name == "deflate":
            out.append(_Inflate(gzip=False))
    return out
