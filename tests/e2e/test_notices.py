"""A release manager writes a notice to customer support in the browser: live preview per
channel, schedules it, and sees it sent (the send services run inline at the notice's time,
delivering to a real local webhook receiver)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from comms import services
from comms.models import Audience, Channel, Delivery, Notice
from comms.templating import zone
from core.roles import RELEASE_MANAGERS
from tests.comms.receivers import WebhookReceiver


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def test_compose__preview_schedule_and_sent(ui, transactional_db, make_user, receiver):
    make_user("remy", RELEASE_MANAGERS, first_name="Remy")
    support = services.audience_create(
        name="Customer support", kind=Audience.Kind.CUSTOMER_SUPPORT, timezone="Europe/Berlin",
        actor=None,
    )  # fmt: skip
    hook = services.channel_create(
        audience=support, kind=Channel.Kind.WEBHOOK, name="Support desk",
        url=receiver.url + "/support", actor=None,
    )  # fmt: skip
    receiver.secrets["/support"] = hook.signing_secret
    ui.login("remy", "pw-remy")
    page = ui.page

    ui.visit("/comms/compose/")
    page.locator("#id_audience").select_option(label="Customer support")
    page.locator("#id_subject").fill("Checkout maintenance for {{ audience.name }}")
    page.locator("#id_body").fill("**Heads-up:** <b>checkout</b> pauses tonight.")
    preview = page.locator("#preview")
    preview.get_by_text("Checkout maintenance for Customer support").first.wait_for()
    email_html = preview.locator("[data-kind=email] .preview-html")
    assert email_html.locator("strong").inner_text() == "Heads-up:"
    assert "<b>" not in email_html.inner_html()  # the writer's raw HTML is escaped
    assert "used by this audience" in preview.locator("[data-kind=webhook]").inner_text()
    assert (
        '"schema": "rollcall.notice/v1"' in preview.locator("[data-kind=webhook] pre").inner_text()
    )
    ui.audit()

    send_at = (timezone.now() + timedelta(hours=2)).astimezone(zone("Europe/Berlin"))
    page.get_by_label("Schedule").check()
    page.locator("#id_send_at").fill(send_at.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/comms/notices/*/")
    ui.audit()
    assert "Scheduled" in page.locator("#notice-status").inner_text()
    notice = Notice.objects.get()
    assert notice.state == Notice.State.SCHEDULED
    assert notice.send_at.astimezone(zone("Europe/Berlin")).strftime("%H:%M") == send_at.strftime(
        "%H:%M"
    )

    # The notice's time comes: the sweep and the delivery task run inline.
    due = notice.send_at + timedelta(seconds=1)
    assert services.notices_send_due(now=due) == 1
    for delivery in Delivery.objects.filter(notice=notice):
        services.delivery_send(delivery_id=delivery.id)

    ui.visit(f"/comms/notices/{notice.pk}/")
    status = page.locator("#notice-status")
    assert "Sent" in status.inner_text()
    assert "Support desk" in status.inner_text()
    [arrival] = receiver.arrivals
    assert receiver.bad_signatures == []
    assert arrival.json["subject"] == "Checkout maintenance for Customer support"
    assert "&lt;b&gt;checkout&lt;/b&gt;" in arrival.json["html"]

    ui.visit("/comms/")
    assert page.get_by_role("link", name="Checkout maintenance for Customer support").is_visible()
    ui.visit("/")
    assert page.get_by_role("heading", name="Recent and upcoming notices").is_visible()
