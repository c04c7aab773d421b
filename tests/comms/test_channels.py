"""comms.channels: the bytes each channel kind sends, signatures, and error classes, against
a real local HTTP server and Django's email backends."""

from __future__ import annotations

import json
import smtplib

import pytest
from django.core import mail

from comms import channels
from comms.channels import Message
from tests.comms.receivers import WebhookReceiver


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def message(kind: str = "webhook", **overrides) -> Message:
    values = {
        "delivery_id": "7d9c4a36-0f5e-4c8b-9a57-3f1f0c2b9e11",
        "channel_kind": kind,
        "url": "",
        "signing_secret": "s3cret",
        "recipient": "pat@example.com",
        "event": "phase_started",
        "subject": "Checkout is live for 25% of users",
        "text": "**Checkout** is live.",
        "markdown": "**Checkout** is live\\.",
        "html": "<p><strong>Checkout</strong> is live.</p>",
        "slack": "*Checkout* is live.",
        "payload": {"notice": {"id": 1}, "release": {"name": "Checkout"}},
    }
    values.update(overrides)
    return Message(**values)


def test_sign__hmac_sha256_hex_of_raw_body():
    # Reference: python3 -c "import hmac,hashlib;print(hmac.new(b'key',b'{}',hashlib.sha256)
    # .hexdigest())"
    assert channels.sign(b"{}", "key") == (
        "sha256=a777724d943eb48dc69bca8a4a6d57a04db3f9ec7e1de4e581e860265bdf3032"
    )
    assert not channels.verify_signature(b"{}", "key", channels.sign(b"{ }", "key"))
    assert not channels.verify_signature(b"{}", "other", channels.sign(b"{}", "key"))


def test_send_http__webhook__signed_body_and_headers(receiver):
    receiver.secrets["/hook"] = "s3cret"

    result = channels.send(message(url=receiver.url + "/hook"))

    arrival = receiver.arrivals[0]
    assert result.status == 200
    assert receiver.bad_signatures == []
    assert arrival.headers["X-Rollcall-Delivery"] == "7d9c4a36-0f5e-4c8b-9a57-3f1f0c2b9e11"
    assert arrival.headers["X-Rollcall-Event"] == "phase_started"
    assert arrival.headers["X-Rollcall-Signature"] == channels.sign(arrival.body, "s3cret")
    body = arrival.json
    assert body["schema"] == "rollcall.notice/v1"
    assert body["delivery_id"] == "7d9c4a36-0f5e-4c8b-9a57-3f1f0c2b9e11"
    assert body["release"] == {"name": "Checkout"}
    assert body["html"].startswith("<p><strong>")
    # Canonical JSON: what is signed is exactly what a re-serialisation gives.
    assert arrival.body == channels.canonical_json(body)


def test_send_http__slack__blocks(receiver):
    channels.send(message("slack", url=receiver.url + "/slack"))
    body = receiver.arrivals[0].json
    assert body["text"] == "Checkout is live for 25% of users"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert body["blocks"][1]["text"] == {"type": "mrkdwn", "text": "*Checkout* is live."}
    assert "X-Rollcall-Signature" not in receiver.arrivals[0].headers


def test_send_http__teams__message_card(receiver):
    channels.send(message("teams", url=receiver.url + "/teams"))
    body = receiver.arrivals[0].json
    assert body["@type"] == "MessageCard"
    assert body["title"] == "Checkout is live for 25% of users"
    assert body["text"] == "**Checkout** is live\\."


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, channels.TransientDeliveryError),
        (429, channels.TransientDeliveryError),
        (500, channels.TransientDeliveryError),
        (404, channels.PermanentDeliveryError),
        (400, channels.PermanentDeliveryError),
        (301, channels.PermanentDeliveryError),
    ],
)
def test_send_http__status__classified(receiver, status, error):
    receiver.status = status
    with pytest.raises(error) as err:
        channels.send(message(url=receiver.url + "/hook"))
    assert err.value.status == status
    assert f"HTTP {status}" in err.value.message


def test_send_http__nobody_listening__transient():
    with pytest.raises(channels.TransientDeliveryError) as err:
        channels.send(message(url="http://127.0.0.1:9/closed"))
    assert "Could not reach" in err.value.message


def test_send_http__network_error__message_carries_no_url_secret():
    secret_url = "http://127.0.0.1:9/services/T000/B000/XXXXsecretXXXX"
    with pytest.raises(channels.TransientDeliveryError) as err:
        channels.send(message("slack", url=secret_url))
    assert "XXXXsecretXXXX" not in err.value.message
    assert "/services/" not in err.value.message
    assert err.value.__cause__ is None  # tracebacks in logs would carry the URL


def test_send_http__error_reply__body_not_echoed(receiver):
    receiver.status = 400
    receiver.body = b"invalid_token https://hooks.example/secret-path and a stack trace"
    with pytest.raises(channels.PermanentDeliveryError) as err:
        channels.send(message("teams", url=receiver.url + "/teams"))
    assert err.value.message == "The receiver answered HTTP 400 Bad Request."
    assert "secret-path" not in err.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:9/hook",  # loopback (only 127.0.0.1 is allowed in tests)
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://[::ffff:192.168.1.1]/hook",
    ],
)
def test_send_http__internal_address__permanent_and_nothing_sent(url):
    with pytest.raises(channels.PermanentDeliveryError) as err:
        channels.send(message("webhook", url=url))
    assert "Refused" in err.value.message
    assert "ROLLCALL_OUTBOUND_ALLOW" in err.value.message


def test_send_http__no_url_or_secret__permanent():
    with pytest.raises(channels.PermanentDeliveryError):
        channels.send(message(url=""))
    with pytest.raises(channels.PermanentDeliveryError):
        channels.send(message(url="http://127.0.0.1:9/x", signing_secret=""))


def test_send_email__text_html_alternative_and_idempotency_headers(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    channels.send(message("email"))

    [email] = mail.outbox
    assert email.to == ["pat@example.com"]
    assert email.subject == "Checkout is live for 25% of users"
    assert email.body == "**Checkout** is live."
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html" and "<strong>Checkout</strong>" in html
    assert email.extra_headers["Message-ID"] == "<7d9c4a36-0f5e-4c8b-9a57-3f1f0c2b9e11@rollcall>"
    assert email.extra_headers["X-Rollcall-Delivery"] == "7d9c4a36-0f5e-4c8b-9a57-3f1f0c2b9e11"


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (smtplib.SMTPRecipientsRefused({"pat@example.com": (550, b"no such user")}),
         channels.PermanentDeliveryError),
        (smtplib.SMTPRecipientsRefused({"pat@example.com": (451, b"try later")}),
         channels.TransientDeliveryError),
        (smtplib.SMTPDataError(554, b"rejected"), channels.PermanentDeliveryError),
        (smtplib.SMTPDataError(421, b"busy"), channels.TransientDeliveryError),
        (smtplib.SMTPServerDisconnected("gone"), channels.TransientDeliveryError),
        (ConnectionRefusedError("refused"), channels.TransientDeliveryError),
    ],
)  # fmt: skip
def test_send_email__smtp_errors__classified(monkeypatch, exc, error):
    def fail(self, fail_silently=False):
        raise exc

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", fail)
    with pytest.raises(error):
        channels.send(message("email"))


def test_preview__each_kind_has_its_shape():
    assert set(channels.preview(message("email"))) == {"subject", "text", "html"}
    assert "blocks" in channels.preview(message("slack"))
    assert channels.preview(message("teams"))["@type"] == "MessageCard"
    assert json.dumps(channels.preview(message("webhook")))
