"""Communications pages at their boundary: permissions, partials for htmx, HX-Trigger,
errors on fields, secrets hidden, constant query counts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from comms import selectors, services
from comms.models import Channel, Delivery, Notice, NoticeTemplate
from tests.comms.factories import (
    AudienceFactory,
    ChannelFactory,
    DeliveryFactory,
    NoticeFactory,
    TemplateFactory,
    standard_audiences,
    started_rollout,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_notices__anonymous__redirected_to_login(client):
    response = client.get(reverse("comms:notices"))
    assert response.status_code == 302 and "/accounts/login/" in response.url


def test_notices__support__sees_list_without_edit_controls(support_client):
    NoticeFactory(subject="Maintenance tonight", state=Notice.State.SENT)
    response = support_client.get(reverse("comms:notices"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Maintenance tonight" in body
    assert "Write a notice" not in body


def test_notices__filter_by_state__htmx_gets_table_partial(rm_client):
    NoticeFactory(subject="Draft one", state=Notice.State.DRAFT)
    NoticeFactory(subject="Sent one", state=Notice.State.SENT)

    response = rm_client.get(reverse("comms:notices"), {"state": "sent"}, **HTMX)

    body = response.content.decode()
    assert body.lstrip().startswith('<div id="notice-table"')
    assert "Sent one" in body and "Draft one" not in body
    assert "<html" not in body


def _notices_about_rollouts(count: int, *, rollouts: int) -> None:
    """`count` notices spread over `rollouts` new rollouts, each notice with everything the list
    prints: its rollout (release, environment), release, phase, author and deliveries (one
    sent, one failed)."""
    from django.contrib.auth.models import User

    from tests.rollouts.factories import make_rollout

    author = User.objects.create_user(f"author-{Notice.objects.count()}")
    made = [make_rollout() for _ in range(rollouts)]
    for i in range(count):
        rollout = made[i % rollouts]
        notice = NoticeFactory(
            rollout=rollout,
            release=rollout.release,
            phase=rollout.phases.order_by("order").first(),
            created_by=author,
            state=Notice.State.SENT,
            send_at=timezone.now() - timedelta(hours=i),
        )
        DeliveryFactory(notice=notice, state=Delivery.State.SENT)
        DeliveryFactory(notice=notice, state=Delivery.State.FAILED)


def test_notices__query_count_constant(rm_client, django_assert_max_num_queries):
    _notices_about_rollouts(3, rollouts=3)
    with django_assert_max_num_queries(12) as few:
        rm_client.get(reverse("comms:notices"))
    _notices_about_rollouts(60, rollouts=8)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = rm_client.get(reverse("comms:notices"))
    body = response.content.decode()
    assert response.context["page"].paginator.count == 63
    assert len(response.context["notices"]) == selectors.NOTICES_PER_PAGE
    assert " in " in body and "1 of 2 sent, <strong>1 failed</strong>" in body
    assert body.count("Retry") >= 20


def test_notices__second_page__the_older_notices_and_a_link_back(rm_client):
    for i in range(selectors.NOTICES_PER_PAGE + 2):
        NoticeFactory(subject=f"Notice number {i:03d}", state=Notice.State.SENT)

    response = rm_client.get(reverse("comms:notices"), {"page": 2})

    body = response.content.decode()
    assert "Notice number 000" in body and "Notice number 001" in body
    assert "Notice number 051" not in body
    assert "page=1" in body and "Page 2 of 2" in body


def test_notices__filtered_by_an_older_rollout_than_the_menu_lists__still_filters(
    rm_client, monkeypatch
):
    from comms.forms import NoticeFilterForm
    from tests.rollouts.factories import make_rollout

    monkeypatch.setattr(NoticeFilterForm, "ROLLOUT_CHOICES", 1)
    old, new = make_rollout(), make_rollout()
    NoticeFactory(subject="About the old one", rollout=old)
    NoticeFactory(subject="About the new one", rollout=new)

    response = rm_client.get(reverse("comms:notices"), {"rollout": old.key})

    body = response.content.decode()
    assert "About the old one" in body and "About the new one" not in body
    assert f'value="{old.key}" selected' in body


def test_notice_detail__shows_deliveries_and_retry_for_failed(rm_client):
    delivery = DeliveryFactory(state=Delivery.State.FAILED, last_error="HTTP 404: gone")
    response = rm_client.get(reverse("comms:notice", args=[delivery.notice_id]))
    body = response.content.decode()
    assert "HTTP 404: gone" in body
    assert reverse("comms:delivery_retry", args=[delivery.pk]) in body


def test_notice_detail__unknown__404(rm_client):
    assert rm_client.get(reverse("comms:notice", args=[999])).status_code == 404


def test_delivery_retry__htmx__204_with_events(rm_client):
    delivery = DeliveryFactory(state=Delivery.State.FAILED)
    Notice.objects.filter(pk=delivery.notice_id).update(state=Notice.State.FAILED)

    response = rm_client.post(reverse("comms:delivery_retry", args=[delivery.pk]), **HTMX)

    delivery.refresh_from_db()
    assert response.status_code == 204
    assert "noticeChanged" in json.loads(response["HX-Trigger"])
    assert delivery.state == Delivery.State.QUEUED


def test_delivery_retry__not_failed__400_toast_not_500(rm_client):
    delivery = DeliveryFactory(state=Delivery.State.SENT)
    response = rm_client.post(reverse("comms:delivery_retry", args=[delivery.pk]), **HTMX)
    assert response.status_code == 400
    assert "Only failed deliveries" in json.loads(response["HX-Trigger"])["toast"]["message"]


def test_delivery_retry__support__403_says_why(support_client):
    delivery = DeliveryFactory(state=Delivery.State.FAILED)
    response = support_client.post(reverse("comms:delivery_retry", args=[delivery.pk]))
    assert response.status_code == 403
    assert "Release managers" in response.content.decode()


def test_notice_cancel__plain_post__redirects(rm_client):
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    notice = services.notice_create(
        audience=audience, subject="Hi", body="Hi", actor=None,
        send_at=timezone.now() + timedelta(hours=2),
    )  # fmt: skip
    response = rm_client.post(reverse("comms:notice_cancel", args=[notice.pk]))
    notice.refresh_from_db()
    assert response.status_code == 302
    assert notice.state == Notice.State.CANCELLED


def test_compose__schedule__creates_scheduled_notice_in_audience_zone(rm_client):
    audience = AudienceFactory(name="Customer support", timezone="Europe/Berlin")
    ChannelFactory(audience=audience)
    when = (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT09:00")

    response = rm_client.post(
        reverse("comms:compose"),
        {"audience": audience.pk, "subject": "Heads-up", "body": "**Soon**", "when": "schedule",
         "send_at": when, "action": "save"},
    )  # fmt: skip

    notice = Notice.objects.get()
    assert response.status_code == 302
    assert notice.state == Notice.State.SCHEDULED
    assert notice.send_at.astimezone(timezone.get_fixed_timezone(0)).hour in (7, 8)  # CET/CEST
    assert notice.deliveries.count() == 1


def test_compose__unknown_variable__400_error_on_body_field(rm_client):
    audience = AudienceFactory()
    response = rm_client.post(
        reverse("comms:compose"),
        {"audience": audience.pk, "subject": "Hi", "body": "{{ relase.name }}", "when": "draft",
         "action": "save"},
    )  # fmt: skip
    body = response.content.decode()
    assert response.status_code == 400
    assert "Unknown variable" in body and "release.name" in body
    assert not Notice.objects.exists()


def test_compose__schedule_without_time__field_error(rm_client):
    response = rm_client.post(
        reverse("comms:compose"),
        {"audience": AudienceFactory().pk, "subject": "Hi", "body": "Hi", "when": "schedule"},
    )
    assert response.status_code == 400
    assert "Choose when to send it." in response.content.decode()


def test_compose_preview__htmx__per_channel_partial_escaped(rm_client):
    audience = AudienceFactory()
    ChannelFactory(audience=audience, kind=Channel.Kind.SLACK)
    rollout = started_rollout(10, 100, now=timezone.now())
    rollout.release.name = "<script>alert(1)</script>"
    rollout.release.save()

    response = rm_client.post(
        reverse("comms:compose_preview"),
        {"audience": audience.pk, "rollout": rollout.pk, "subject": "{{ release.name }}",
         "body": "**{{ release.name }}** in {{ environment }}"},
        **HTMX,
    )  # fmt: skip

    body = response.content.decode()
    assert body.lstrip().startswith('<div id="preview"')
    assert "<script>alert" not in body
    assert "&lt;script&gt;" in body
    assert 'data-kind="slack"' in body and "used by this audience" in body
    assert 'data-kind="webhook"' in body


def test_compose_preview__bad_template__error_in_partial(rm_client):
    response = rm_client.post(
        reverse("comms:compose_preview"),
        {"audience": AudienceFactory().pk, "subject": "x", "body": "{% load x %}"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "template tags" in response.content.decode()


def test_compose__support__403(support_client):
    assert support_client.get(reverse("comms:compose")).status_code == 403


def test_notice_edit__sent__redirects_with_message(rm_client):
    notice = NoticeFactory(state=Notice.State.SENT)
    response = rm_client.get(reverse("comms:notice_edit", args=[notice.pk]))
    assert response.status_code == 302


def test_templates__release_manager_creates__validation_on_field(rm_client):
    bad = rm_client.post(
        reverse("comms:template_create"),
        {"name": "T", "event": "custom", "subject": "Hi", "body": "{{ nope }}"},
    )
    good = rm_client.post(
        reverse("comms:template_create"),
        {"name": "T", "event": "held", "subject": "Held: {{ release.name }}", "body": "x"},
    )
    assert bad.status_code == 400 and "Unknown variable" in bad.content.decode()
    assert good.status_code == 302
    assert NoticeTemplate.objects.get().event == "held"


def test_template_preview__sample_values(rm_client):
    response = rm_client.post(
        reverse("comms:template_preview"),
        {"subject": "{{ release.name }}", "body": "Live for {{ exposure }}"},
        **HTMX,
    )
    body = response.content.decode()
    assert "Faster checkout" in body and "25% of users" in body


def test_audiences__release_manager__cannot_create(rm_client):
    response = rm_client.get(reverse("comms:audience_create"))
    assert response.status_code == 403
    assert "Admins" in response.content.decode()


def test_audience_detail__support__no_secrets(support_client):
    channel = ChannelFactory(url="https://hooks.example.com/very-secret-path")
    response = support_client.get(reverse("comms:audience", args=[channel.audience_id]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "very-secret-path" not in body and channel.signing_secret not in body
    assert "only admins see them" in body


def test_audience_detail__admin__masked_secrets(admin_client_role):
    channel = ChannelFactory(url="https://hooks.example.com/very-secret-path")
    response = admin_client_role.get(reverse("comms:audience", args=[channel.audience_id]))
    body = response.content.decode()
    assert "very-secret-path" not in body
    assert channel.masked_url in body and channel.masked_secret in body


def test_channel_create__webhook__secret_shown_once(admin_client_role):
    audience = AudienceFactory()
    response = admin_client_role.post(
        reverse("comms:channel_create", args=[audience.pk]),
        {
            "kind": "webhook",
            "name": "Hook",
            "url": "https://hooks.example.com/x",
            "is_enabled": "on",
        },
    )
    channel = Channel.objects.get()
    first = admin_client_role.get(reverse("comms:audience", args=[audience.pk])).content.decode()
    second = admin_client_role.get(reverse("comms:audience", args=[audience.pk])).content.decode()
    assert response.status_code == 302
    assert channel.signing_secret in first
    assert channel.signing_secret not in second


def test_channel_edit__blank_url_keeps_address(admin_client_role):
    channel = ChannelFactory(url="https://hooks.example.com/keep")
    admin_client_role.post(
        reverse("comms:channel_edit", args=[channel.pk]),
        {"name": "Renamed", "url": "", "is_enabled": "on"},
    )
    channel.refresh_from_db()
    assert (channel.name, channel.url) == ("Renamed", "https://hooks.example.com/keep")


def test_plan__shows_planned_notices_and_adds_rule(rm_client):
    audiences = standard_audiences()
    rollout = started_rollout(10, 50, 100, now=timezone.now())
    page = rm_client.get(reverse("comms:plan", args=[rollout.key]))
    response = rm_client.post(
        reverse("comms:plan", args=[rollout.key]),
        {"audience": audiences["customers"].pk, "event": "phase_upcoming", "phases": "full",
         "lead_amount": "2", "lead_unit": "hours", "is_enabled": "on"},
    )  # fmt: skip
    assert page.status_code == 200
    assert "Notice to Customer support" in page.content.decode()
    assert response.status_code == 302
    assert Notice.objects.filter(
        rollout=rollout, audience=audiences["customers"], event="phase_upcoming"
    ).exists()


def test_plan__upcoming_without_lead_time__error_on_field(rm_client):
    audiences = standard_audiences()
    rollout = started_rollout(10, 100, now=timezone.now())
    response = rm_client.post(
        reverse("comms:plan", args=[rollout.key]),
        {"audience": audiences["customers"].pk, "event": "phase_upcoming", "phases": "all",
         "lead_unit": "hours"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "how long before" in response.content.decode()


def test_plan__support_post__403(support_client):
    rollout = started_rollout(10, 100, now=timezone.now())
    response = support_client.post(reverse("comms:plan", args=[rollout.key]), {})
    assert response.status_code == 403


def test_dashboard__panel_lists_upcoming(rm_client):
    TemplateFactory()
    audience = AudienceFactory(name="Customer support")
    ChannelFactory(audience=audience)
    services.notice_create(
        audience=audience, subject="Planned maintenance", body="x", actor=None,
        send_at=timezone.now() + timedelta(hours=3),
    )  # fmt: skip
    body = rm_client.get("/").content.decode()
    assert "Recent and upcoming notices" in body
    assert "Planned maintenance" in body


def test_dashboard__support_without_view_perm__no_panel(client, make_user):
    client.force_login(make_user("nobody"))
    body = client.get("/").content.decode()
    assert "Recent and upcoming notices" not in body


@pytest.mark.django_db
def test_rollout_page__shows_its_planned_notices_and_plan_link(rm_client):
    from django.utils import timezone

    from comms.services import plan_ensure
    from tests.comms.factories import standard_audiences, started_rollout

    standard_audiences()
    rollout = started_rollout(10, 50, 100, now=timezone.now())
    plan_ensure(rollout=rollout)
    html = rm_client.get(f"/rollouts/{rollout.key}/").content.decode()
    assert 'id="rollout-notices-title"' in html
    assert f'href="/comms/plans/{rollout.key}/"' in html
    assert "Customer support" in html
