"""Senders, one per channel kind. Each turns a notice's frozen rendering into the bytes of
one message and sends it; errors are classified as transient (retry later) or permanent.

The generic webhook body is a stable, documented schema (README, "Webhook notices"):
`rollcall.notice/v1`, signed with HMAC-SHA256 over the raw body.

HTTP goes through `core.outbound` (internal addresses refused, the checked address pinned).
Slack and Teams webhook URLs are credentials: error messages (stored in Delivery.last_error,
which Support sees) name neither the URL nor the receiver's reply body, only the status code
and its short reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import threading
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from comms.models import Channel, Delivery, Notice
from core import outbound

SCHEMA = "rollcall.notice/v1"
SIGNATURE_HEADER = "X-Rollcall-Signature"
DELIVERY_HEADER = "X-Rollcall-Delivery"
EVENT_HEADER = "X-Rollcall-Event"
USER_AGENT = "Rollcall-Notices/1.0"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
# HTTP answers worth trying again: timeouts, rate limits, server trouble.
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


_local = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per thread (created lazily, so after a worker forks); its
    connections go only to addresses core.outbound checked."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = outbound.new_session(USER_AGENT)
    return session


class DeliveryError(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class TransientDeliveryError(DeliveryError):
    """Worth another attempt (network trouble, 5xx, 429)."""


class PermanentDeliveryError(DeliveryError):
    """Will not succeed by retrying (4xx, refused address, missing URL)."""


@dataclass(frozen=True)
class Message:
    """What a sender needs: the frozen notice content and where it goes."""

    delivery_id: str
    channel_kind: str
    url: str
    signing_secret: str
    recipient: str
    event: str
    subject: str
    text: str
    markdown: str
    html: str
    slack: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Result:
    status: int | None = None
    detail: str = ""


def message_for(*, delivery: Delivery, notice: Notice, channel: Channel) -> Message:
    return Message(
        delivery_id=str(delivery.idempotency_key),
        channel_kind=channel.kind,
        url=channel.url,
        signing_secret=channel.signing_secret,
        recipient=delivery.recipient,
        event=notice.event,
        subject=notice.rendered_subject,
        text=notice.rendered_text,
        markdown=notice.rendered_markdown,
        html=notice.rendered_html,
        slack=notice.rendered_slack,
        payload=notice.context_data,
    )


# --------------------------------------------------------------------------------------------
# Bodies


def canonical_json(data: Any) -> bytes:
    """The exact bytes that are sent and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the raw body with the channel's signing secret."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does (documented in the README); used by Rollcall's own tests."""
    return hmac.compare_digest(sign(body, secret), header or "")


def webhook_body(message: Message) -> dict[str, Any]:
    body = dict(message.payload)
    body.update(
        {
            "schema": SCHEMA,
            "delivery_id": message.delivery_id,
            "event": message.event,
            "subject": message.subject,
            "text": message.text,
            "markdown": message.markdown,
            "html": message.html,
        }
    )
    return body


def slack_body(message: Message) -> dict[str, Any]:
    return {
        "text": message.subject,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message.slack[:3000]}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"Rollcall notice · delivery {message.delivery_id}"}
                ],
            },
        ],
    }


def teams_body(message: Message) -> dict[str, Any]:
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": message.subject,
        "themeColor": "2248B8",
        "title": message.subject,
        "text": message.markdown,
        "sections": [{"text": f"Rollcall notice · delivery {message.delivery_id}"}],
    }


BODIES = {
    Channel.Kind.SLACK: slack_body,
    Channel.Kind.TEAMS: teams_body,
    Channel.Kind.WEBHOOK: webhook_body,
}


def preview(message: Message) -> dict[str, Any]:
    """What each channel kind would receive, for the composer's preview."""
    if message.channel_kind == Channel.Kind.EMAIL:
        return {"subject": message.subject, "text": message.text, "html": message.html}
    return BODIES[Channel.Kind(message.channel_kind)](message)


# --------------------------------------------------------------------------------------------
# Senders


def send(message: Message) -> Result:
    if message.channel_kind == Channel.Kind.EMAIL:
        return send_email(message)
    return send_http(message)


def send_http(message: Message) -> Result:
    if not message.url:
        raise PermanentDeliveryError("The channel has no webhook address; an admin must set it.")
    body = canonical_json(BODIES[Channel.Kind(message.channel_kind)](message))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: message.delivery_id,
        EVENT_HEADER: message.event,
    }
    if message.channel_kind == Channel.Kind.WEBHOOK:
        if not message.signing_secret:
            raise PermanentDeliveryError("The webhook has no signing secret; rotate it to set one.")
        headers[SIGNATURE_HEADER] = sign(body, message.signing_secret)
    try:
        # No redirects: a webhook that moved answers 3xx, which is reported, not followed.
        response = outbound.request(
            "POST",
            message.url,
            session=_session(),
            data=body,
            headers=headers,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
        )
    except outbound.OutboundRefused as exc:
        raise PermanentDeliveryError(exc.message) from None
    except outbound.OutboundError as exc:
        # `from None`: the cause names the URL, and tracebacks end up in logs.
        raise TransientDeliveryError(f"Could not reach the receiver: {exc.message}") from None
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return Result(status=status, detail=_reason(response))
    # The reply body is not shown: receivers echo URLs, tokens and stack traces.
    reason = _reason(response)
    message_text = f"The receiver answered HTTP {status}" + (f" {reason}." if reason else ".")
    if status in TRANSIENT_STATUSES:
        raise TransientDeliveryError(message_text, status=status)
    raise PermanentDeliveryError(message_text, status=status)


def _reason(response: requests.Response) -> str:
    """The status line's reason ("Not Found"), short and printable, or ""."""
    reason = response.reason if isinstance(response.reason, str) else ""
    return "".join(ch for ch in reason[:60] if ch.isprintable()).strip()


def send_email(message: Message) -> Result:
    from comms.templating import Rendered, email_html

    if not message.recipient:
        raise PermanentDeliveryError("The email has no recipient.")
    rendered = Rendered(
        subject=message.subject, text=message.text, markdown=message.markdown, html=message.html,
        slack="",
    )  # fmt: skip
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[message.recipient],
        headers={
            # The idempotency id as Message-ID: mail systems drop a second copy of an id.
            "Message-ID": f"<{message.delivery_id}@rollcall>",
            DELIVERY_HEADER: message.delivery_id,
            EVENT_HEADER: message.event,
        },
        connection=get_connection(fail_silently=False),
    )
    email.attach_alternative(email_html(rendered), "text/html")
    try:
        email.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = {code for code, _ in exc.recipients.values()}
        error = f"The mail server refused {message.recipient}: {exc.recipients}"
        if all(400 <= code < 500 for code in codes):
            raise TransientDeliveryError(error) from exc
        raise PermanentDeliveryError(error) from exc
    except smtplib.SMTPResponseException as exc:
        error = f"The mail server answered {exc.smtp_code}: {exc.smtp_error!r}"
        if 400 <= exc.smtp_code < 500:
            raise TransientDeliveryError(error, status=exc.smtp_code) from exc
        raise PermanentDeliveryError(error, status=exc.smtp_code) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientDeliveryError(f"Could not send the email: {exc}") from exc
    return Result(status=250, detail="accepted")
