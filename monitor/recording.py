"""The recorded-exchange format: load and save exchanges, and a transport that replays them.

A recording is a directory. Each exchange is `NNN-<slug>.json` holding the request (method, URL)
and the response (status, headers), with the body beside it in `NNN-<slug>.body.<ext>` — bodies stay
readable and diffable. Tests load the same files into respx; `monitor fetch --replay DIR` serves
them through `ReplayTransport`; `monitor record` writes them with `Recorder`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from monitor.http import Response

# Hop-by-hop and encoding headers describe the wire, not the content: a recorded body is stored
# decoded, so replaying these would make httpx decode it a second time.
_DROP_HEADERS = {
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
}


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    request_headers: dict[str, str] = field(default_factory=dict)

    def response(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(self.status, headers=self.headers, content=self.body, request=request)


def load_exchanges(directory: str | Path) -> list[Exchange]:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such recording directory")
    out = []
    for meta_path in sorted(directory.glob("*.json")):
        if ".body." in meta_path.name:
            continue
        try:
            exchange = _read_exchange(meta_path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            reason = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise ValueError(f"{meta_path}: not a recorded exchange: {reason}") from None
        if exchange is not None:
            out.append(exchange)
    return out


def _read_exchange(meta_path: Path) -> Exchange | None:
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or "request" not in meta or "response" not in meta:
        return None  # other JSON files (expected outputs) may live beside a recording
    req, resp = meta["request"], meta["response"]
    body_file = resp.get("body_file")
    body = (meta_path.parent / body_file).read_bytes() if body_file else b""
    return Exchange(
        method=req.get("method", "GET").upper(),
        url=req["url"],
        status=int(resp.get("status", 200)),
        headers=[(k, v) for k, v in _pairs(resp.get("headers", {}))],
        body=body,
        request_headers=dict(req.get("headers", {})),
    )


def _pairs(headers: Any) -> list[tuple[str, str]]:
    if isinstance(headers, dict):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _slug(url: str) -> str:
    s = re.sub(r"^[a-z]+://", "", url)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")[:80] or "root"


_EXT = {
    "xml": ".xml",
    "rss": ".xml",
    "atom": ".xml",
    "json": ".json",
    "html": ".html",
    "vtt": ".vtt",
}


def save_exchange(directory: str | Path, exchange: Exchange) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = len([p for p in directory.glob("*.json") if ".body." not in p.name]) + 1
    stem = f"{n:03d}-{_slug(exchange.url)}"
    ctype = dict((k.lower(), v) for k, v in exchange.headers).get("content-type", "")
    ext = next((e for key, e in _EXT.items() if key in ctype), "")
    body_name = f"{stem}.body{ext}" if exchange.body else None
    if body_name:
        (directory / body_name).write_bytes(exchange.body)
    meta = {
        "request": {"method": exchange.method, "url": exchange.url},
        "response": {
            "status": exchange.status,
            "headers": [[k, v] for k, v in exchange.headers if k.lower() not in _DROP_HEADERS],
            "body_file": body_name,
        },
    }
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers from recorded exchanges; an unrecorded URL fails like an unreachable host.

    Several exchanges for one URL are served in order, the last one repeating — so a recording
    can hold a 200 followed by a 304 for the same feed.
    """

    def __init__(self, exchanges: list[Exchange]) -> None:
        self._by_key: dict[tuple[str, str], list[Exchange]] = defaultdict(list)
        for ex in exchanges:
            self._by_key[(ex.method, _norm(ex.url))].append(ex)
        self._served: dict[tuple[str, str], int] = defaultdict(int)

    def answer(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, _norm(str(request.url)))
        options = self._by_key.get(key)
        if not options:
            raise httpx.ConnectError(
                f"no recorded exchange for {request.method} {request.url}", request=request
            )
        i = min(self._served[key], len(options) - 1)
        self._served[key] += 1
        return options[i].response(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.answer(request)


def _norm(url: str) -> str:
    return str(httpx.URL(url))


class Recorder:
    """Saves in `directory` each answer the monitor's client accepts (`Http(observe=...)`).

    Recording there, not in a transport, means a recording is what a fetch sees: the same
    transport, guard and proxies, bodies decoded and refused past the size cap before anything
    is written, and redirects kept hop by hop so a replay follows them.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.saved: list[Path] = []

    def __call__(self, response: Response) -> None:
        headers = response.headers.multi_items()
        exchange = Exchange("GET", response.url, response.status, headers, response.body)
        self.saved.append(save_exchange(self.directory, exchange))


def install_in_respx(router: Any, exchanges: list[Exchange]) -> None:
    """Register recorded exchanges as respx routes, answered as `ReplayTransport` answers."""
    replay = ReplayTransport(exchanges)
    for method, url in {(ex.method, ex.url) for ex in exchanges}:
        router.route(method=method, url=url).mock(side_effect=replay.answer)


# yt-dlp does its own networking, so its answers are recorded as they reach the monitor: one
# `NNN-ytdlp-<slug>.json` per extraction, `{"ytdlp": {"url", "flat"}, "info": {...}}`.


def save_ytdlp(directory: str | Path, url: str, flat: bool, info: dict[str, Any]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = len([p for p in directory.glob("*.json") if ".body." not in p.name]) + 1
    path = directory / f"{n:03d}-ytdlp-{_slug(url)}.json"
    doc = {"ytdlp": {"url": url, "flat": flat}, "info": info}
    path.write_text(
        json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    return path


def load_ytdlp(directory: str | Path) -> dict[tuple[str, bool], dict[str, Any]]:
    out: dict[tuple[str, bool], dict[str, Any]] = {}
    for path in sorted(Path(directory).glob("*-ytdlp-*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and "ytdlp" in doc and "info" in doc:
            out[(doc["ytdlp"]["url"], bool(doc["ytdlp"].get("flat")))] = doc["info"]
    return out
