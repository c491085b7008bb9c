"""The apprise notifier: real Apprise, sending to real receivers on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import parse_config
from monitor.http import Http
from monitor.notifiers.apprise import (
    HTML,
    MARKDOWN,
    TEXT,
    AppriseNotifier,
    _instantiate,
    body_format,
    render,
    target_key,
)
from monitor.notifiers.base import DeliveryError
from tests.notifiers.conftest import payload


@dataclass
class Receiver:
    """An HTTP server that records every request and answers `status` (per path prefix)."""

    port: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # path prefix → status

    def bodies(self, prefix: str) -> list[dict[str, Any]]:
        return [json.loads(b) for _, path, _, b in self.requests if path.startswith(prefix)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append((self.command, self.path, headers, body))
            status = next((s for p, s in state.failing.items() if self.path.startswith(p)), 200)
            reply: dict[str, Any] = {}
            if status >= 400:
                reply = {"error": "the desk's channel is archived", "errcode": "M_FORBIDDEN"}
            elif self.path.endswith("/login"):  # Matrix: a password login
                reply = {"access_token": "syt_token", "user_id": "@monitor:localhost"}
            elif "/join/" in self.path:
                reply = {"room_id": "!desk:localhost"}
            elif "/send/" in self.path:
                reply = {"event_id": "$1"}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = do_GET = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def notifier(*urls: str) -> AppriseNotifier:
    return AppriseNotifier(id="desk", type="apprise", urls=list(urls), timeout=5.0)


async def send(n: AppriseNotifier, payloads: list[dict[str, Any]], **kw: Any) -> None:
    async with Http(timeout=5.0) as http:
        await n.send(payloads, "msg_1", http, **kw)


async def test_json_receiver_gets_title_facts_bold_words_and_link(receiver: Receiver) -> None:
    await send(notifier(f"json://127.0.0.1:{receiver.port}/hook"), [payload()])
    (doc,) = receiver.bodies("/hook")
    assert doc["title"] == "[nato-troops-ukraine] Statement on NATO troops in Ukraine"
    assert "nato-troops-ukraine · kremlin-news · 2024-05-01 12:30 UTC" in doc["message"]
    assert "deploying **NATO** **troops** to **Ukraine**" in doc["message"]
    assert "(<https://en.kremlin.ru/events/president/news/1>)" in doc["message"]


async def test_video_match_links_to_the_second(receiver: Receiver) -> None:
    video = payload(
        kind="video",
        url="https://www.youtube.com/watch?v=abc",
        offset=83.0,
        link="https://www.youtube.com/watch?v=abc&t=83s",
    )
    await send(notifier(f"json://127.0.0.1:{receiver.port}/hook"), [video])
    (doc,) = receiver.bodies("/hook")
    assert "[watch at 1:23](<https://www.youtube.com/watch?v=abc&t=83s>)" in doc["message"]


async def test_mattermost_gets_markdown_bold(receiver: Receiver) -> None:
    await send(notifier(f"mmost://127.0.0.1:{receiver.port}/hooktoken"), [payload()])
    (doc,) = receiver.bodies("/hooks/hooktoken")
    assert "**NATO** **troops**" in doc["text"]


async def test_ntfy_and_gotify_get_plain_text_with_marks(receiver: Receiver) -> None:
    n = notifier(
        f"ntfy://127.0.0.1:{receiver.port}/desk", f"gotify://127.0.0.1:{receiver.port}/AppToken1"
    )
    await send(n, [payload()])
    (ntfy,) = [b for b in receiver.bodies("/") if b.get("topic") == "desk"]
    assert "[NATO] [troops]" in ntfy["message"]
    (gotify,) = receiver.bodies("/message")
    assert "https://en.kremlin.ru/events/president/news/1" in gotify["message"]
    (headers,) = [h for _, p, h, _ in receiver.requests if p.startswith("/message")]
    assert headers["x-gotify-key"] == "AppToken1"


async def test_matrix_room_gets_html_with_strong_words(receiver: Receiver) -> None:
    await send(notifier(f"matrix://monitor:pw@127.0.0.1:{receiver.port}/#desk"), [payload()])
    (msg,) = [json.loads(b) for _, p, _, b in receiver.requests if "/send/m.room.message" in p]
    assert "<strong>NATO</strong> <strong>troops</strong>" in msg["formatted_body"]


async def test_an_error_answer_fails_with_the_reason_and_masks_the_token(
    receiver: Receiver,
) -> None:
    receiver.failing["/message"] = 500
    with pytest.raises(DeliveryError) as e:
        await send(notifier(f"gotify://127.0.0.1:{receiver.port}/SecretAppToken"), [payload()])
    assert "Gotify" in str(e.value) and "500" in str(e.value)
    assert "SecretAppToken" not in str(e.value)


async def test_a_retry_goes_only_to_the_urls_that_failed(receiver: Receiver) -> None:
    good = f"json://127.0.0.1:{receiver.port}/good"
    bad = f"json://127.0.0.1:{receiver.port}/bad"
    receiver.failing["/bad"] = 503
    with pytest.raises(DeliveryError) as e:
        await send(notifier(good, bad), [payload()])
    assert e.value.reached == {target_key(good)}
    del receiver.failing["/bad"]
    await send(notifier(good, bad), [payload()], reached=e.value.reached)
    assert len(receiver.bodies("/good")) == 1 and len(receiver.bodies("/bad")) == 2


async def test_a_digest_is_one_message_with_a_section_per_match(receiver: Receiver) -> None:
    second = payload(id="post-2", title="Élysée on troops", snippet="… [troops] …")
    await send(notifier(f"json://127.0.0.1:{receiver.port}/hook"), [payload(), second])
    (doc,) = receiver.bodies("/hook")
    assert doc["title"].startswith("[2 matches] ")
    assert "**Statement on NATO troops in Ukraine**" in doc["message"]
    assert "**Élysée on troops**" in doc["message"]


# --- formats (pure) -------------------------------------------------------------------------


def test_telegram_takes_html_and_slack_markdown() -> None:
    tgram = "tgram://123456789:AAHfake-token_abcdefghijklmnopqrstu/-1001234567890"
    slack = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#desk"
    assert body_format(_instantiate(tgram), tgram) == (HTML, HTML)
    assert body_format(_instantiate(slack), slack) == (MARKDOWN, MARKDOWN)


def test_post_content_cannot_inject_markup() -> None:
    hostile = payload(title="<script>x</script>", snippet="*[NATO]* <a href=x>_y_</a> # z")
    _, html_body = render([hostile], HTML)
    assert "<script>" not in html_body and "&lt;a href=x&gt;" in html_body
    assert "<b>NATO</b>" in html_body
    _, md = render([hostile], MARKDOWN)
    assert "\\***NATO**\\*" in md and "\\<a href=x\\>\\_y\\_\\</a\\>" in md


@settings(max_examples=150, deadline=None)
@given(
    title=st.text(alphabet=st.characters(codec=None, categories=None)),
    snippet=st.text(),
    offset=st.none() | st.floats(),
)
def test_any_post_renders_in_every_format_with_only_our_own_html(title, snippet, offset) -> None:
    p = payload(title=title, snippet=snippet, offset=offset)
    for fmt in (HTML, MARKDOWN, TEXT):
        render([p, p], fmt)
    _, body = render([p], HTML)
    assert "<" not in re.sub(r"</?b>|<br>|<a href=\"[^\"<>]*\">|</a>", "", body)


def test_source_health_event_renders_as_a_message() -> None:
    event = {
        "type": "source_failing", "alert": "dark", "at": "2026-12-01T10:00:00Z",
        "source": {"id": "nato", "type": "feed", "url": "https://www.nato.int/rss"},
        "seconds": 6 * 3600 + 300, "last_error": "HTTP 404 Not Found", "failures": 7,
        "link": "https://www.nato.int/rss",
    }  # fmt: skip
    title, body = render([event], MARKDOWN)
    assert title == "[dark] nato failing for 6h 5m: HTTP 404 Not Found"
    assert "Last error: HTTP 404 Not Found" in body


# --- configuration --------------------------------------------------------------------------


def test_check_names_a_url_apprise_cannot_use_without_printing_it(tmp_path, capsys) -> None:
    from monitor.cli import main

    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[notifiers.desk]\ntype = "apprise"\n'
        'urls = ["json://127.0.0.1/ok", "slak://T1/B2/hush-secret", "no-scheme-hush",'
        ' "msteams://hush/hush/hush"]\n'
    )
    assert main(["check", "--config", str(cfg)]) == 2
    out = capsys.readouterr().out
    assert "notifiers.desk.urls[1]: Apprise cannot send to this slak:// URL" in out
    assert "notifiers.desk.urls[2]: not an Apprise URL" in out
    assert "urls[3]: Apprise cannot send to this msteams:// URL (Microsoft retired" in out
    assert "urls[0]" not in out and "hush" not in out
    # Commands that never send do not load Apprise to read the URLs.
    raw = {"notifiers": {"desk": {"type": "apprise", "urls": ["slak://T1/B2/hush-secret"]}}}
    assert parse_config(raw, env={}, need_notifiers=False).notifiers["desk"]


def test_a_url_secret_from_the_environment_is_masked(receiver: Receiver) -> None:
    url = f"gotify://127.0.0.1:{receiver.port}/${{GOTIFY_TOKEN}}"
    raw = {"notifiers": {"desk": {"type": "apprise", "urls": [url]}}}
    config = parse_config(raw, env={"GOTIFY_TOKEN": "AbCdEf123456"})
    assert config.redact(str(config.notifiers["desk"])).count("AbCdEf123456") == 0


# --- through the outbox ---------------------------------------------------------------------


async def test_outbox_keeps_a_refused_message_pending_with_the_masked_reason_then_sends_it(
    tmp_path, receiver: Receiver
) -> None:
    from monitor.archive.sqlite import Store
    from monitor.outbox import deliver_due

    good = f"json://127.0.0.1:{receiver.port}/good"
    raw = {
        "monitor": {"database": str(tmp_path / "m.db")},
        "notifiers": {
            "desk": {
                "type": "apprise",
                "urls": [good, f"json://127.0.0.1:{receiver.port}/${{PATH_SECRET}}"],
            }
        },
    }
    config = parse_config(raw, env={"PATH_SECRET": "sekrit-path"})
    receiver.failing["/sekrit-path"] = 500
    store = Store(config.database)
    store.sync_sources([("kremlin-news", "feed", None)])
    with store.transaction() as db:
        db.execute(
            "INSERT INTO posts (id, source_id, external_id, first_seen_at, updated_at, rev) "
            "VALUES ('post-1', 'kremlin-news', 'e', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', 1)"
        )
        store.add_match(db, "nato", "post-1", "[NATO]", None, ["desk"], payload())
    async with Http(timeout=5.0) as http:
        first = await deliver_due(store, config, http)
        row = store.db.execute("SELECT status, last_error, reached FROM deliveries").fetchone()
        assert (first.sent, first.retrying) == (0, 1) and row["status"] == "pending"
        assert "500" in row["last_error"] and "sekrit-path" not in row["last_error"]
        assert json.loads(row["reached"]) == [target_key(good)]
        del receiver.failing["/sekrit-path"]
        second = await deliver_due(store, config, http, force=True)
    assert second.sent == 1
    assert len(receiver.bodies("/good")) == 1 and len(receiver.bodies("/sekrit-path")) == 2
    store.close()
