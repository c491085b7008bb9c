"""A real HTTP server on 127.0.0.1 for tests: serves routes, answers conditional GETs, records posts."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    delay: float = 0.0
    gzip: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that takes a client leaving mid-answer in its stride.

    A client that times out or is cancelled closes its socket while the answer is written;
    socketserver's default prints a BrokenPipeError traceback for that, which in a test
    run reads as a failure that is not one.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):  # broken pipe, reset by peer
            return
        super().handle_error(request, client_address)


class AnswerHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, quiet, and `answer()`: what the test origins share."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)


class Origin:
    """`with Origin() as o: o.routes["/feed"] = Route(...); httpx.get(o.url("/feed"))`.

    POSTs are recorded in `received` and answered with the next status of `post_statuses`
    (the last one repeating), so a test can make a webhook fail and then recover.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route | Callable[[Received], Route]] = {}
        self.received: list[Received] = []
        self.post_statuses: list[int] = [200]
        self._lock = threading.Lock()
        origin = self

        class Handler(AnswerHandler):
            def _record(self) -> Received:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with origin._lock:
                    origin.received.append(rec)
                return rec

            def do_GET(self) -> None:  # noqa: N802
                rec = self._record()
                route = origin.routes.get(self.path.split("#")[0])
                if callable(route):
                    route = route(rec)
                if route is None:
                    self.answer(404, {"Content-Type": "text/plain"}, b"not found")
                    return
                if route.delay:
                    time.sleep(route.delay)
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    self.answer(304, {"ETag": route.etag}, b"")
                    return
                headers = dict(route.headers)
                if route.etag:
                    headers["ETag"] = route.etag
                body = route.body
                if route.gzip:
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self.answer(route.status, headers, body)

            def do_POST(self) -> None:  # noqa: N802
                self._record()
                with origin._lock:
                    status = origin.post_statuses[0]
                    if len(origin.post_statuses) > 1:
                        origin.post_statuses.pop(0)
                self.answer(
                    status, {"Content-Type": "text/plain"}, b"ok" if status < 300 else b"error"
                )

        self.server = QuietServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.host = host
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def posts(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.method == "POST"]

    def gets(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r for r in self.received if r.method == "GET" and (path is None or r.path == path)
            ]

    def __enter__(self) -> Origin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_briefing(origin: Origin) -> None:
    """fixtures/video's briefing page, its English captions and a stub clip, on `origin`."""
    from tests.conftest import FIXTURES

    video = FIXTURES / "video"
    origin.routes["/briefing.html"] = Route(
        (video / "briefing.html").read_bytes(), headers={"Content-Type": "text/html"}
    )
    origin.routes["/briefing.en.vtt"] = Route(
        (video / "briefing.en.vtt").read_bytes(), headers={"Content-Type": "text/vtt"}
    )
    origin.routes["/clip.mp4"] = Route(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
