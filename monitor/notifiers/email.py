"""The email notifier: one message per match (or per digest), sent over SMTP."""

from __future__ import annotations

import asyncio
import hashlib
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.notifiers import message
from monitor.notifiers.base import DeliveryError, NotifierConfig

if TYPE_CHECKING:
    from monitor.http import Http

SECURITY = ("starttls", "tls", "none")


class _Policy(email_policy.EmailPolicy):
    """The default policy, with text headers folded by email.header.Header.

    CPython 3.11's folder splits a non-ASCII header between two encoded words at a space, and
    decoders drop whitespace there ("görüşme, l'Élysée" arrives as "görüşme,l'Élysée").
    email.header.Header keeps every space inside the encoded words. An ASCII value that fits
    on a line of its own but not after "Subject: " the folder moves whole to the next line
    ("Subject:\r\n [alert] title"): parsers read it back with a leading space, and a filter on
    "Subject: [alert]" misses it. Header folds at a space, from the first line.
    """

    _TEXT_HEADERS = ("subject", "x-monitor-alert")

    def _ours(self, name: str, value: str) -> bool:
        # An ASCII "=?...?=" would read as an encoded word unless the folder encodes it.
        text = str(value)
        return name.lower() in self._TEXT_HEADERS and (not text.isascii() or "=?" not in text)

    def fold(self, name: str, value: str) -> str:
        if self._ours(name, value):
            charset = "us-ascii" if str(value).isascii() else "utf-8"
            encoded = Header(str(value), charset, header_name=name).encode(linesep=self.linesep)
            return f"{name}: {encoded}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if self._ours(name, value):
            return self.fold(name, value).encode("ascii")
        return super().fold_binary(name, value)


# 7bit makes the library pick quoted-printable or base64 for non-ASCII bodies, so the message
# survives relays without 8BITMIME.
POLICY = _Policy(cte_type="7bit")

_ID_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DOMAIN_SAFE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def message_id(delivery_id: str, from_: str) -> str:
    """A Message-ID that depends only on the delivery, so a retried send is recognisably the same."""
    left = str(delivery_id)
    if not _ID_SAFE.fullmatch(left):
        left = hashlib.sha256(left.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    domain = parseaddr(from_)[1].rpartition("@")[2]
    if not _DOMAIN_SAFE.fullmatch(domain):
        domain = "outlet-monitor.invalid"
    return f"<outlet-monitor.{left}@{domain}>"


def build_message(
    payloads: list[dict[str, Any]],
    delivery_id: str,
    from_: str,
    to: list[str],
    *,
    now: datetime | None = None,
) -> EmailMessage:
    """The email for one match, or for a digest of several: text and HTML alternatives."""
    msg = EmailMessage(policy=POLICY)
    # Every header value goes through one_line, so nothing from a post can start a new header.
    msg["Subject"] = message.subject(payloads)
    msg["From"] = message.one_line(from_)
    msg["To"] = ", ".join(message.one_line(addr) for addr in to)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(delivery_id, from_)
    # RFC 3834: tells vacation responders and ticket systems not to answer the alert.
    msg["Auto-Submitted"] = "auto-generated"
    alerts = dict.fromkeys(message.one_line(str(p.get("alert", ""))) for p in payloads)
    msg["X-Monitor-Alert"] = ", ".join(alerts)
    msg.set_content(message.text_body(payloads))
    msg.add_alternative(message.html_body(payloads), subtype="html")
    return msg


@dataclass(frozen=True, kw_only=True)
class EmailNotifier(NotifierConfig):
    """`type = "email"`: an SMTP server and who receives the alerts."""

    host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password: str | None = None
    from_: str = field(metadata={"key": "from"})
    to: list[str]
    ca_file: str | None = None  # PEM file of extra CAs to trust, e.g. a relay's self-signed cert

    def validate(self) -> list[str]:
        problems = []
        if self.security not in SECURITY:
            problems.append(
                f"security: must be one of {', '.join(SECURITY)}, got {self.security!r}"
            )
        if not 0 < self.port < 65536:
            problems.append(f"port: must be between 1 and 65535, got {self.port}")
        if not self.host.strip():
            problems.append("host: must not be empty")
        if not _is_address(self.from_):
            problems.append(f"from: not an email address: {self.from_!r}")
        if not self.to:
            problems.append("to: needs at least one address")
        problems += [f"to: not an email address: {a!r}" for a in self.to if not _is_address(a)]
        if self.password is not None and not self.username:
            problems.append("password: is set but username is not, so it would never be used")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            problems.append(f"ca_file: no such file: {self.ca_file}")
        return problems

    async def send(
        self,
        payloads: list[dict[str, Any]],
        delivery_id: str,
        http: Http,
        *,
        reached: frozenset[str] = frozenset(),  # one target: never partly sent
    ) -> None:
        msg = build_message(payloads, delivery_id, self.from_, self.to)
        try:
            await asyncio.to_thread(self._send_sync, msg)
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError, ValueError, UnicodeError) as e:
            raise DeliveryError(self._hide_secret(self._reason(e))) from None

    def _send_sync(self, msg: EmailMessage) -> None:
        context = self._tls_context() if self.security != "none" else None
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    # Going on in plain text would expose the password and the alert.
                    raise DeliveryError(
                        f"{self.host}:{self.port} does not offer STARTTLS "
                        '(use security = "tls" or "none")'
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password or "")
            # Recipients refused while others accepted are not retried: a retry would send
            # the alert twice to everyone who already has it.
            smtp.send_message(msg, from_addr=self.from_, to_addrs=self.to)

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise DeliveryError(f"ca_file {self.ca_file}: cannot load: {e}") from None

    def _reason(self, e: Exception) -> str:
        where = f"{self.host}:{self.port}"
        if isinstance(e, smtplib.SMTPAuthenticationError):
            return f"login refused by {where}: {_smtp_text(e.smtp_code, e.smtp_error)}"
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            refused = ", ".join(
                f"{addr} ({_smtp_text(code, text)})" for addr, (code, text) in e.recipients.items()
            )
            return f"every recipient refused by {where}: {refused}"
        if isinstance(e, smtplib.SMTPSenderRefused):
            return f"sender {e.sender} refused by {where}: {_smtp_text(e.smtp_code, e.smtp_error)}"
        if isinstance(e, smtplib.SMTPResponseException):
            return f"{where} answered {_smtp_text(e.smtp_code, e.smtp_error)}"
        if isinstance(e, smtplib.SMTPServerDisconnected):
            return f"{where} closed the connection: {str(e) or 'unexpectedly'}"
        if isinstance(e, smtplib.SMTPNotSupportedError):
            return f"{where} does not support what the message needs: {e}"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate of {where} not trusted: {e.verify_message} (see ca_file)"
        if isinstance(e, ssl.SSLError):
            return f"TLS error with {where}: {e.reason or e}"
        if isinstance(e, TimeoutError):
            return f"timed out after {self.timeout:g}s talking to {where}"
        if isinstance(e, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(e, OSError) and e.strerror:
            return f"cannot reach {where}: {e.strerror}"
        return f"{type(e).__name__} with {where}: {e}"

    def _hide_secret(self, reason: str) -> str:
        # Servers sometimes echo what they were sent; the reason ends up in the database.
        if self.password:
            reason = reason.replace(self.password, "***")
        return reason


def _smtp_text(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return message.one_line(f"{code} {text}")


def _is_address(value: str) -> bool:
    name, addr = parseaddr(value)
    return bool(addr) and "@" in addr and message.one_line(value) == value.strip()
