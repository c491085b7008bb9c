"""Real receivers on 127.0.0.1 for the notifier tests: an SMTP server and an HTTP server."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from monitor.http import Http
from tests.origin import QuietServer, Received

SMTP_USER = "monitor"
SMTP_PASSWORD = "s3cret-hunter2"


def payload(**changes: Any) -> dict[str, Any]:
    """A DESIGN.md webhook payload; `title=...` etc. change the post, other keys the payload."""
    post = {
        "id": "post-1",
        "source": "kremlin-news",
        "source_type": "feed",
        "kind": "article",
        "url": "https://en.kremlin.ru/events/president/news/1",
        "author": "Press Office",
        "title": "Statement on NATO troops in Ukraine",
        "text": "Deploying NATO troops to Ukraine would provoke an escalation.",
        "published_at": "2024-05-01T12:30:00Z",
    }
    top = {
        "type": "match",
        "alert": "nato-troops-ukraine",
        "query": "NATO troops Ukraine",
        "snippet": "... deploying [NATO] [troops] to [Ukraine] would provoke ...",
        "offset": None,
        "link": post["url"],
    }
    for key, value in changes.items():
        (post if key in post else top)[key] = value
    return {**top, "post": post}


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every envelope it is given."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = data.login == SMTP_USER.encode() and data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(data.login.decode())
        # handled=False: aiosmtpd itself answers 535 (with True it would stay silent).
        return AuthResult(success=ok, handled=ok)


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Start an aiosmtpd server on 127.0.0.1: `smtp_server(**aiosmtpd_options)`."""
    started: list[Controller] = []

    def start(**options: Any) -> SmtpServer:
        inbox = Inbox()
        port = free_port()
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, **options
        )
        controller.start()
        started.append(controller)
        return SmtpServer(port, inbox)

    yield start
    for controller in started:
        controller.stop()


@dataclass
class WebhookServer:
    """What the test wants answered, and everything the server received."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 204
    reply_headers: dict[str, str] = field(default_factory=dict)
    reply_body: bytes = b""
    delay: float = 0.0
    served: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """A ThreadingHTTPServer on 127.0.0.1 that records POSTs and answers as told."""
    state = WebhookServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            state.requests.append(
                Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if state.delay:
                state.served.wait(state.delay)
            self.send_response(state.status)
            for name, value in state.reply_headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(state.reply_body)))
            self.end_headers()
            self.wfile.write(state.reply_body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.served.set()  # release a handler told to stall
    server.shutdown()
    server.server_close()


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    client = Http(timeout=5.0)
    yield client
    await client.aclose()
