"""Delivering one message through its channel's Airflow connection: e-mail with the SMTP provider's hook (plain
text and HTML alternatives), webhooks with the HTTP provider's hook (JSON, Slack's ``{text}``, or a Teams
MessageCard). Secrets stay in the connections; every attempt is bounded by ``TIMEOUT_SECONDS``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

#: the longest one delivery attempt may take (connect, send, answer)
TIMEOUT_SECONDS = 10


class DeliveryError(Exception):
    """A message that could not be delivered, in one sentence (no secret: the connection holds them)."""


def deliver(message: Mapping[str, Any]) -> None:
    """Send ``message`` (an outbox row: kind, connection, format, address, subject, text, html, payload)."""
    try:
        if message["kind"] == "email":
            _email(message)
        elif message["kind"] == "webhook":
            _webhook(message)
        else:
            raise DeliveryError(f"unknown channel kind {message['kind']!r}")
    except DeliveryError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise DeliveryError(f"{type(exc).__name__}: {text}") from exc


def email_message(message: Mapping[str, Any], sender: str) -> EmailMessage:
    """The e-mail: plain text first, HTML as the alternative a mail client prefers."""
    mail = EmailMessage()
    mail["Subject"] = message["subject"]
    mail["From"] = sender
    mail["To"] = message["address"]
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(idstring=str(message.get("key", ""))[:16] or None, domain="release-mgmt")
    mail["X-Release-Mgmt-Key"] = str(message.get("key", ""))
    mail.set_content(message["text"])
    if message.get("html"):
        mail.add_alternative(message["html"], subtype="html")
    return mail


def _email(message: Mapping[str, Any]) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    class BoundedSmtpHook(SmtpHook):
        """The connection's login and TLS settings; one try, bounded in time (the outbox retries, with backoff)."""

        @property
        def timeout(self) -> int:
            return min(super().timeout, TIMEOUT_SECONDS)

        @property
        def smtp_retry_limit(self) -> int:
            return 0

    with BoundedSmtpHook(smtp_conn_id=message["connection"]) as smtp:
        sender = smtp.from_email or smtp.smtp_user or "release-mgmt@localhost"
        client = smtp._smtp_client
        if client is None:
            raise DeliveryError(f"SMTP connection {message['connection']!r} did not open")
        client.send_message(email_message(message, sender))


def webhook_body(message: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for the channel's format."""
    if message.get("format") == "slack":
        return {"text": f"*{message['subject']}*\n{message['text']}"}
    if message.get("format") == "teams":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": message["subject"],
            "title": message["subject"],
            "text": message["text"].replace("\n", "\n\n"),
        }
    return {"subject": message["subject"], "text": message["text"], **json.loads(message.get("payload") or "{}")}


def _webhook(message: Mapping[str, Any]) -> None:
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="POST", http_conn_id=message["connection"])
    response = hook.run(  # the connection's host is the webhook's whole URL (its path may be a secret)
        "",
        json=webhook_body(message),
        headers={"Content-Type": "application/json", "Idempotency-Key": str(message.get("key", ""))},
        extra_options={"timeout": TIMEOUT_SECONDS, "check_response": False},
    )
    if response.status_code >= 300:
        raise DeliveryError(f"the webhook answered {response.status_code} {response.reason}")
