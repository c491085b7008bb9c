"""The email notifier: message building, and delivery to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.notifiers.base import DeliveryError
from monitor.notifiers.email import EmailNotifier, build_message
from monitor.notifiers.message import SUBJECT_TITLE_LIMIT, one_line, truncate
from tests.conftest import Cert
from tests.notifiers.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, free_port, payload

FROM = "monitor@example.org"
TO = ["desk@example.org", "analyst@example.net"]
NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)


def notifier(port: int, **changes: Any) -> EmailNotifier:
    fields: dict[str, Any] = {
        "id": "desk",
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_": FROM,
        "to": TO,
        "timeout": 5.0,
    }
    return EmailNotifier(**{**fields, **changes})


def reparse(msg: EmailMessage) -> EmailMessage:
    """The message as a receiver sees it: serialized to bytes and parsed back."""
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain = msg.get_body(("plain",))
    rich = msg.get_body(("html",))
    assert plain is not None and rich is not None
    return plain.get_content(), rich.get_content()


# --- build_message (pure) ---------------------------------------------------------------


def test_message_has_subject_text_and_html_parts_with_snippet_link_source_and_date() -> None:
    msg = reparse(build_message([payload()], "d-1", FROM, TO, now=NOW))
    assert msg["Subject"] == "[nato-troops-ukraine] Statement on NATO troops in Ukraine"
    assert msg["From"] == FROM
    assert msg["To"] == ", ".join(TO)
    assert msg["Date"] == "Wed, 01 May 2024 13:00:00 +0000"
    plain, rich = parts(msg)
    for body in (plain, rich):
        assert "https://en.kremlin.ru/events/president/news/1" in body
        assert "kremlin-news" in body
        assert "2024-05-01 12:30 UTC" in body
        assert "NATO troops Ukraine" in body
    assert "[NATO] [troops] to [Ukraine]" in plain
    assert "<mark>NATO</mark> <mark>troops</mark> to <mark>Ukraine</mark>" in rich
    assert '<a href="https://en.kremlin.ru/events/president/news/1">' in rich


def test_message_id_is_stable_for_a_delivery_and_differs_between_deliveries() -> None:
    first = build_message([payload()], "42", FROM, TO)
    retry = build_message([payload()], "42", FROM, TO)
    other = build_message([payload()], "43", FROM, TO)
    assert first["Message-ID"] == retry["Message-ID"] == "<outlet-monitor.42@example.org>"
    assert other["Message-ID"] != first["Message-ID"]


def test_message_id_of_an_odd_delivery_id_is_still_a_valid_msg_id() -> None:
    msg_id = build_message([payload()], "a b@<c>\r\n", FROM, TO)["Message-ID"]
    assert msg_id.startswith("<outlet-monitor.") and msg_id.endswith("@example.org>")
    assert " " not in msg_id and "\n" not in msg_id and msg_id.count("<") == 1


def test_hostile_title_and_text_are_escaped_in_the_html_part() -> None:
    hostile = payload(
        title="<script>alert('t')</script> & co",
        text='<img src=x onerror="alert(1)"> text',
        author="<b>author</b>",
        snippet="a [<script>] b",
        link="javascript:alert(1)",
    )
    _, rich = parts(reparse(build_message([hostile], "d-1", FROM, TO)))
    assert "<script>" not in rich and "<img" not in rich and "<b>author" not in rich
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt; &amp; co" in rich
    assert "<mark>&lt;script&gt;</mark>" in rich
    assert "href" not in rich  # a javascript: link is shown, never clickable


def test_right_to_left_words_take_their_direction_from_themselves_in_the_html_part() -> None:
    arabic = payload(
        title="الكرملين: نشر قوات الناتو في أوكرانيا تصعيد",
        text="قال المتحدث باسم الكرملين إن نشر قوات الناتو تصعيد خطير.",
        snippet="نشر قوات [الناتو] في [أوكرانيا]",
    )
    _, rich = parts(reparse(build_message([arabic], "d-1", FROM, TO)))
    assert '<h2 dir="auto">الكرملين' in rich
    assert '<blockquote dir="auto">نشر قوات <mark>الناتو</mark>' in rich
    assert '<p dir="auto">قال المتحدث' in rich
    assert "<th align=left>" in rich  # the labels stay left to right


def test_newlines_in_a_title_cannot_add_headers() -> None:
    hostile = payload(title="Hello\r\nBcc: victim@example.com\r\n\r\nbody\x00\x1b[31m\u2028X")
    raw = build_message([hostile], "d-1", FROM, TO).as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in head and b"\r\nBcc:" not in head
    msg = reparse(build_message([hostile], "d-1", FROM, TO))
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[nato-troops-ukraine] Hello Bcc: victim@example.com body [31m X"


def test_a_subject_that_fits_a_line_of_its_own_starts_on_the_subject_line() -> None:
    # CPython folds this one as "Subject:\r\n [berlin-attack] ...": read back with a leading
    # space, and missed by a desk's filter on "Subject: [berlin-attack]".
    msg = build_message(
        [
            payload(
                alert="berlin-attack",
                title="What we know so far about the Berlin Pride ramming attack",
            )
        ],
        "d-1",
        FROM,
        TO,
    )
    raw = msg.as_bytes()
    assert raw.startswith(b"Subject: [berlin-attack] What we know so far about the Berlin Pride")
    assert reparse(msg)["Subject"] == (
        "[berlin-attack] What we know so far about the Berlin Pride ramming attack"
    )
    headers = raw.replace(b"\r\n", b"\n").split(b"\n\n")[0]
    assert max(len(line) for line in headers.split(b"\n")) <= 78


def test_long_title_is_truncated_at_a_word_with_an_ellipsis() -> None:
    title = " ".join(["word"] * 100)
    subject = build_message([payload(title=title)], "d-1", FROM, TO)["Subject"]
    title_part = subject.removeprefix("[nato-troops-ukraine] ")
    assert len(title_part) <= SUBJECT_TITLE_LIMIT
    assert title_part.endswith("word…")


def test_post_without_title_uses_the_start_of_its_text() -> None:
    subject = build_message([payload(title=None, text="Short post\nsecond line")], "1", FROM, TO)[
        "Subject"
    ]
    assert subject == "[nato-troops-ukraine] Short post second line"


def test_digest_has_count_in_subject_and_a_section_per_match() -> None:
    second = payload(id="post-2", title="Élysée: communiqué", alert="macron")
    msg = reparse(build_message([payload(), second], "d-9", FROM, TO))
    assert msg["Subject"].startswith("[2 matches] nato-troops-ukraine, macron: ")
    plain, rich = parts(msg)
    for body in (plain, rich):
        assert "Statement on NATO troops in Ukraine" in body
        assert "Élysée: communiqué" in body
    assert rich.count("<section>") == 2


def test_video_match_shows_the_offset_and_links_to_that_second() -> None:
    video = payload(kind="video", offset=83.4, link="https://www.youtube.com/watch?v=ID&t=83s")
    plain, rich = parts(reparse(build_message([video], "d-1", FROM, TO)))
    assert "1:23" in plain and "https://www.youtube.com/watch?v=ID&t=83s" in plain
    assert 'href="https://www.youtube.com/watch?v=ID&amp;t=83s"' in rich


def test_lone_surrogates_do_not_break_the_message() -> None:
    msg = reparse(build_message([payload(title="bad \udc80 char", text="x\ud800y")], "1", FROM, TO))
    assert msg["Subject"] == "[nato-troops-ukraine] bad \ufffd char"


# --- validate ---------------------------------------------------------------------------


def test_validate_accepts_a_plain_config() -> None:
    assert notifier(587, security="starttls").validate() == []


def test_validate_rejects_unknown_security_naming_the_key() -> None:
    problems = notifier(25, security="ssl").validate()
    assert problems == ["security: must be one of starttls, tls, none, got 'ssl'"]


def test_validate_rejects_bad_addresses_port_and_missing_ca_file() -> None:
    problems = notifier(
        0, from_="not an address", to=[], ca_file="/nonexistent/ca.pem", password="x"
    ).validate()
    keys = sorted(p.split(":", 1)[0] for p in problems)
    assert keys == ["ca_file", "from", "password", "port", "to"]


# --- delivery to a real SMTP server ------------------------------------------------------


async def test_message_is_delivered_over_plain_smtp_with_multilingual_content(
    smtp_server: Callable[..., SmtpServer], http: Any
) -> None:
    server = smtp_server()
    multilingual = payload(
        title="НАТО: войска на Украине — İstanbul'da görüşme, l'Élysée réagit",
        text="Путин заявил… Türkiye Dışişleri Bakanlığı açıkladı. Ça déçoit à Paris.",
        snippet="[НАТО] ... [ğüşıöç] ... [Élysée]",
        author="Пресс-служба",
    )
    await notifier(server.port).send([multilingual], "d-7", http)

    [envelope] = server.inbox.envelopes
    assert envelope.mail_from == FROM
    assert envelope.rcpt_tos == TO
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == (
        "[nato-troops-ukraine] НАТО: войска на Украине — İstanbul'da görüşme, l'Élysée réagit"
    )
    assert msg["Message-ID"] == "<outlet-monitor.d-7@example.org>"
    plain, rich = parts(msg)  # type: ignore[arg-type]
    for body in (plain, rich):
        assert "Путин заявил… Türkiye Dışişleri Bakanlığı açıkladı. Ça déçoit à Paris." in body
        assert "Пресс-служба" in body
    assert "<mark>ğüşıöç</mark>" in rich
    # Bodies are 7-bit on the wire, so relays without 8BITMIME pass them intact.
    assert max(envelope.content) < 128


async def test_starttls_delivery_with_login_trusting_the_servers_own_cert(
    smtp_server: Callable[..., SmtpServer], tls_cert: Cert, http: Any
) -> None:
    server = smtp_server(tls_context=tls_cert.server_context(), require_starttls=True)
    config = notifier(
        server.port,
        security="starttls",
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        ca_file=str(tls_cert.cert_file),
    )
    await config.send([payload()], "d-1", http)
    assert len(server.inbox.envelopes) == 1
    assert server.inbox.logins == [SMTP_USER]


async def test_implicit_tls_delivery(
    smtp_server: Callable[..., SmtpServer], tls_cert: Cert, http: Any
) -> None:
    server = smtp_server(ssl_context=tls_cert.server_context())
    await notifier(server.port, security="tls", ca_file=str(tls_cert.cert_file)).send(
        [payload()], "d-1", http
    )
    assert len(server.inbox.envelopes) == 1


async def test_untrusted_certificate_is_a_delivery_error(
    smtp_server: Callable[..., SmtpServer], tls_cert: Cert, http: Any
) -> None:
    server = smtp_server(tls_context=tls_cert.server_context(), require_starttls=True)
    with pytest.raises(DeliveryError, match="certificate .* not trusted"):
        await notifier(server.port, security="starttls").send([payload()], "d-1", http)
    assert server.inbox.envelopes == []


async def test_starttls_required_but_not_offered_never_falls_back_to_plain_text(
    smtp_server: Callable[..., SmtpServer], http: Any
) -> None:
    server = smtp_server()
    config = notifier(server.port, security="starttls", username=SMTP_USER, password="pw")
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        await config.send([payload()], "d-1", http)
    assert server.inbox.envelopes == []


async def test_wrong_password_is_a_delivery_error_that_does_not_reveal_it(
    smtp_server: Callable[..., SmtpServer], tls_cert: Cert, http: Any
) -> None:
    server = smtp_server(tls_context=tls_cert.server_context(), require_starttls=True)
    wrong = "wrong-Pa55word"
    config = notifier(
        server.port,
        security="starttls",
        username=SMTP_USER,
        password=wrong,
        ca_file=str(tls_cert.cert_file),
    )
    with pytest.raises(DeliveryError, match="login refused") as info:
        await config.send([payload()], "d-1", http)
    assert wrong not in str(info.value)
    assert server.inbox.envelopes == []


async def test_unreadable_ca_file_is_a_delivery_error_naming_it(tmp_path: Path, http: Any) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    config = notifier(free_port(), security="starttls", ca_file=str(garbage))
    with pytest.raises(DeliveryError, match="^ca_file .*ca.pem: cannot load"):
        await config.send([payload()], "d-1", http)


async def test_dead_port_is_a_quick_delivery_error(http: Any) -> None:
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="connection refused by 127.0.0.1"):
        await notifier(free_port()).send([payload()], "d-1", http)
    assert time.monotonic() - started < 3


@settings(max_examples=200, deadline=None)
@given(title=st.text(alphabet=st.characters(codec=None, categories=None), max_size=300))
def test_any_title_round_trips_as_one_subject_line_and_never_adds_a_header(title: str) -> None:
    msg = reparse(build_message([payload(title=title)], "d-1", FROM, TO))
    # A title with nothing printable falls back to the post's text.
    expected = truncate(one_line(title), SUBJECT_TITLE_LIMIT) or payload()["post"]["text"]
    assert msg["Subject"] == f"[nato-troops-ukraine] {expected}"
    assert sorted(msg.keys()) == sorted(
        ["Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted", "X-Monitor-Alert"]
        + ["MIME-Version", "Content-Type"]
    )
