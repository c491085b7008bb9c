"""The webhook notifier: Standard Webhooks signing, and POSTs to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.http import Http
from monitor.notifiers.base import DeliveryError
from monitor.notifiers.webhook import WebhookNotifier, encode_body, sign
from tests.notifiers.conftest import WebhookServer, free_port, payload

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def notifier(url: str, **changes: Any) -> WebhookNotifier:
    fields: dict[str, Any] = {"id": "hook", "type": "webhook", "url": url, "timeout": 5.0}
    return WebhookNotifier(**{**fields, **changes})


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """A receiver's check, written from the spec rather than with `sign`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


# --- signing and encoding (pure) ----------------------------------------------------------


def test_sign_matches_the_standard_webhooks_test_vector() -> None:
    signature = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_accepts_a_secret_without_the_whsec_prefix() -> None:
    bare = SECRET.removeprefix("whsec_")
    assert sign(bare, "m", 1, "body") == sign(SECRET, "m", 1, b"body")


def test_single_match_body_is_the_payload_itself() -> None:
    assert json.loads(encode_body([payload()])) == payload()


def test_digest_body_wraps_the_matches() -> None:
    second = payload(id="post-2")
    assert json.loads(encode_body([payload(), second])) == {
        "type": "digest",
        "matches": [payload(), second],
    }


def test_body_is_utf8_without_escapes_for_non_ascii_text() -> None:
    body = encode_body([payload(title="НАТО İstanbul Élysée")])
    assert "НАТО İstanbul Élysée".encode() in body


def test_hostile_content_still_gives_valid_json() -> None:
    hostile = payload(
        title='</script><script>alert("x")</script>\x00\u2028',
        text="lone \udc80 and \ud83d surrogates",
        offset=float("nan"),
    )
    doc = json.loads(encode_body([hostile]).decode("utf-8"))
    assert doc["post"]["title"] == '</script><script>alert("x")</script>\x00\u2028'
    assert doc["post"]["text"] == "lone \ufffd and \ufffd surrogates"
    assert doc["offset"] is None


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(codec=None, categories=None)))
def test_any_text_gives_valid_utf8_json(text: str) -> None:
    doc = json.loads(encode_body([payload(title=text, snippet=text)]).decode("utf-8"))
    assert doc["alert"] == "nato-troops-ukraine"


# --- validate ---------------------------------------------------------------------------


def test_validate_accepts_a_whsec_secret_and_extra_headers() -> None:
    config = notifier("https://hooks.example.org/x", secret=SECRET, headers={"Authorization": "a"})
    assert config.validate() == []


def test_validate_says_when_the_secret_is_not_base64() -> None:
    [problem] = notifier("https://hooks.example.org/x", secret="whsec_not base64!").validate()
    assert problem.startswith("secret: not valid base64")


def test_validate_rejects_reserved_or_broken_headers_and_bad_urls() -> None:
    problems = notifier(
        "ftp://example.org",
        headers={"Webhook-Signature": "x", "X-Ok": "a\r\nInjected: 1", "bad name": "v"},
    ).validate()
    assert problems == [
        "url: must be an http:// or https:// URL, got 'ftp://example.org'",
        "headers: 'Webhook-Signature' is set by the notifier itself",
        "headers: the value of 'X-Ok' has a line break or control",
        "headers: 'bad name' is not a valid header name",
    ]


# --- delivery to a real HTTP server --------------------------------------------------------


async def test_post_carries_json_and_a_verifiable_signature(
    webhook_server: WebhookServer, http: Http
) -> None:
    config = notifier(webhook_server.url, secret=SECRET, headers={"Authorization": "Bearer t"})
    before = int(time.time())
    await config.send([payload(title="НАТО")], "delivery-17", http)

    [request] = webhook_server.requests
    assert request.path == "/hook"
    assert request.headers["content-type"].startswith("application/json")
    assert request.headers["authorization"] == "Bearer t"
    assert request.headers["webhook-id"] == "delivery-17"
    assert before <= int(request.headers["webhook-timestamp"]) <= time.time()
    assert verify(SECRET, request.headers, request.body)
    assert json.loads(request.body.decode("utf-8")) == payload(title="НАТО")


async def test_webhook_id_is_the_delivery_id_given_on_every_send(
    webhook_server: WebhookServer, http: Http
) -> None:
    # That the outbox gives a retry its delivery's first id is pinned end to end, in
    # test_end_to_end.py::test_webhook_that_fails_then_recovers_gets_each_delivery_once_...
    config = notifier(webhook_server.url, secret=SECRET)
    await config.send([payload()], "d-1", http)
    await config.send([payload()], "d-2", http)
    await config.send([payload()], "d-1", http)
    assert [r.headers["webhook-id"] for r in webhook_server.requests] == ["d-1", "d-2", "d-1"]


async def test_without_a_secret_there_is_no_signature(
    webhook_server: WebhookServer, http: Http
) -> None:
    await notifier(webhook_server.url).send([payload()], "d-1", http)
    assert "webhook-signature" not in webhook_server.requests[0].headers


async def test_server_error_is_a_delivery_error_with_the_status(
    webhook_server: WebhookServer, http: Http
) -> None:
    webhook_server.status = 500
    webhook_server.reply_body = b"database\r\nis down"
    with pytest.raises(DeliveryError, match=r"^HTTP 500 Internal Server Error: database is down$"):
        await notifier(webhook_server.url).send([payload()], "d-1", http)


async def test_retry_after_is_passed_on(webhook_server: WebhookServer, http: Http) -> None:
    webhook_server.status = 503
    webhook_server.reply_headers = {"Retry-After": "120"}
    with pytest.raises(DeliveryError, match="HTTP 503") as info:
        await notifier(webhook_server.url).send([payload()], "d-1", http)
    assert info.value.retry_after == 120


async def test_a_huge_retry_after_is_shown_as_the_day_it_is_held_to(
    webhook_server: WebhookServer, http: Http, tmp_path
) -> None:
    from monitor.archive.sqlite import Store
    from monitor.config import parse_config
    from monitor.outbox import deliver_due
    from tests.test_outbox import seed

    webhook_server.status = 503
    webhook_server.reply_headers = {"Retry-After": "1000000000"}
    config = parse_config(
        {"monitor": {"database": str(tmp_path / "m.db")},
         "notifiers": {"hook": {"type": "webhook", "url": webhook_server.url}}},
        env={},
    )  # fmt: skip
    store = Store(config.database)
    seed(store, 1)
    result = await deliver_due(store, config, http)
    (last_error,) = store.db.execute("SELECT last_error FROM deliveries").fetchone()
    store.close()
    assert "(Retry-After 86400s)" in last_error, last_error
    assert "1000000000" not in last_error and "1000000000" not in result.errors[0]


async def test_redirect_is_not_followed_and_not_counted_as_delivered(
    webhook_server: WebhookServer, http: Http
) -> None:
    webhook_server.status = 302
    webhook_server.reply_headers = {"Location": "/elsewhere"}
    with pytest.raises(DeliveryError, match="HTTP 302 .*redirects to /elsewhere"):
        await notifier(webhook_server.url).send([payload()], "d-1", http)
    assert len(webhook_server.requests) == 1


async def test_closed_port_is_a_delivery_error(http: Http) -> None:
    with pytest.raises(DeliveryError, match="network error"):
        await notifier(f"http://127.0.0.1:{free_port()}/hook").send([payload()], "d-1", http)


async def test_slow_receiver_times_out(webhook_server: WebhookServer, http: Http) -> None:
    webhook_server.delay = 5
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timed out"):
        await notifier(webhook_server.url, timeout=0.3).send([payload()], "d-1", http)
    assert time.monotonic() - started < 2


async def test_a_receivers_retry_after_delays_the_outbox_by_at_most_a_day(
    webhook_server: WebhookServer, http: Http, tmp_path
) -> None:
    from monitor.archive.sqlite import Store, iso_to_epoch
    from monitor.config import parse_config
    from monitor.outbox import deliver_due
    from tests.test_outbox import seed

    webhook_server.status = 503
    webhook_server.reply_headers = {"Retry-After": str(365 * 86400)}  # a broken proxy
    config = parse_config(
        {"monitor": {"database": str(tmp_path / "m.db")},
         "notifiers": {"hook": {"type": "webhook", "url": webhook_server.url}}},
        env={},
    )  # fmt: skip
    store = Store(config.database)
    seed(store, 1)
    before = time.time()
    result = await deliver_due(store, config, http)
    (next_at,) = store.db.execute("SELECT next_attempt_at FROM deliveries").fetchone()
    store.close()
    assert result.retrying == 1
    assert 86400 - 2 <= iso_to_epoch(next_at) - before <= 86400 + 2
