"""Notices API: permissions, the error shape, create/send/cancel/retry, plans."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from comms.models import Delivery, Notice, NoticeTemplate, PlanRule
from tests.comms.factories import (
    AudienceFactory,
    ChannelFactory,
    DeliveryFactory,
    TemplateFactory,
    standard_audiences,
    started_rollout,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(release_manager):
    client = APIClient()
    client.force_authenticate(release_manager)
    return client


@pytest.fixture
def support_api(support_user):
    client = APIClient()
    client.force_authenticate(support_user)
    return client


@pytest.fixture
def admin_api(admin_user_role):
    client = APIClient()
    client.force_authenticate(admin_user_role)
    return client


def test_anonymous__403_json():
    response = APIClient().get("/api/v1/notices/")
    assert response.status_code == 403
    assert response.json()["error"] == "not_authenticated"


def test_audiences__support_reads__cannot_create(support_api):
    AudienceFactory(name="Customers")
    listed = support_api.get("/api/v1/audiences/")
    created = support_api.post("/api/v1/audiences/", {"name": "X"}, format="json")
    assert [a["name"] for a in listed.json()] == ["Customers"]
    assert "channels" not in listed.json()[0]
    assert created.status_code == 403
    assert "Admins" in created.json()["message"]


def test_audiences__release_manager_cannot_create__admin_can(api, admin_api):
    refused = api.post("/api/v1/audiences/", {"name": "Ops"}, format="json")
    created = admin_api.post(
        "/api/v1/audiences/",
        {"name": "Ops", "kind": "technical_support", "timezone": "Europe/Paris",
         "contacts": ["Pat <pat@x.io>"]},
        format="json",
    )  # fmt: skip
    assert refused.status_code == 403
    assert created.status_code == 201
    assert created.json()["contacts"] == [{"name": "Pat", "email": "pat@x.io"}]


def test_audiences__bad_timezone__400_field(admin_api):
    response = admin_api.post(
        "/api/v1/audiences/", {"name": "X", "timezone": "Nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["fields"] == {"timezone": [response.json()["message"]]}


def test_templates__create_unknown_variable__400_on_body(api):
    response = api.post(
        "/api/v1/notice-templates/",
        {"name": "T", "event": "custom", "subject": "x", "body": "{{ release.nmae }}"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["body"]
    assert not NoticeTemplate.objects.exists()


def test_templates__patch_and_delete(api):
    template = TemplateFactory(name="Old")
    patched = api.patch(f"/api/v1/notice-templates/{template.pk}/", {"name": "New"}, format="json")
    deleted = api.delete(f"/api/v1/notice-templates/{template.pk}/")
    assert patched.json()["name"] == "New"
    assert deleted.status_code == 204 and not NoticeTemplate.objects.exists()


def test_notices__create_scheduled_then_cancel(api):
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    when = (timezone.now() + timedelta(hours=5)).isoformat()

    created = api.post(
        "/api/v1/notices/",
        {"audience": audience.pk, "subject": "Soon", "body": "**Soon**", "send_at": when},
        format="json",
    )
    notice_id = created.json()["id"]
    cancelled = api.post(f"/api/v1/notices/{notice_id}/cancel/", {"reason": "moved"}, format="json")

    assert created.status_code == 201
    assert created.json()["state"] == "scheduled"
    assert len(created.json()["deliveries"]) == 1
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["state_note"].endswith(": moved")


def test_notices__send_now__sending_with_queued_deliveries(api):
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    created = api.post(
        "/api/v1/notices/", {"audience": audience.pk, "subject": "Hi", "body": "Hi"}, format="json"
    )
    sent = api.post(f"/api/v1/notices/{created.json()['id']}/send/")
    again = api.post(f"/api/v1/notices/{created.json()['id']}/send/")
    assert created.json()["state"] == "draft"
    assert sent.json()["state"] == "sending"
    assert [d["state"] for d in sent.json()["deliveries"]] == ["queued"]
    assert again.status_code == 400 and again.json()["fields"] == {
        "state": [again.json()["message"]]
    }


def test_notices__patch_send_at_null__back_to_draft(api):
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    when = (timezone.now() + timedelta(hours=5)).isoformat()
    created = api.post(
        "/api/v1/notices/",
        {"audience": audience.pk, "subject": "Hi", "body": "Hi", "send_at": when},
        format="json",
    )
    patched = api.patch(
        f"/api/v1/notices/{created.json()['id']}/", {"send_at": None, "subject": "New"},
        format="json",
    )  # fmt: skip
    assert patched.json()["state"] == "draft" and patched.json()["subject"] == "New"


def test_notices__retry_failed(api):
    delivery = DeliveryFactory(state=Delivery.State.FAILED)
    Notice.objects.filter(pk=delivery.notice_id).update(state=Notice.State.FAILED)
    response = api.post(f"/api/v1/notices/{delivery.notice_id}/retry/")
    assert response.status_code == 200
    assert response.json()["state"] == "sending"
    assert response.json()["deliveries"][0]["state"] == "queued"


def test_notices__support_cannot_create(support_api):
    response = support_api.post(
        "/api/v1/notices/",
        {"audience": AudienceFactory().pk, "subject": "x", "body": "x"},
        format="json",
    )
    assert response.status_code == 403


def test_notices__list_filtered_and_constant_queries(api, django_assert_max_num_queries):
    DeliveryFactory(notice__state=Notice.State.SENT)
    with django_assert_max_num_queries(6) as few:
        api.get("/api/v1/notices/?state=sent")
    for _ in range(15):
        DeliveryFactory(notice__state=Notice.State.SENT)
    DeliveryFactory(notice__state=Notice.State.FAILED)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get("/api/v1/notices/?state=sent")
    assert len(response.json()) == 16


def test_plan__get_defaults_then_put_rules(api):
    audiences = standard_audiences()
    rollout = started_rollout(10, 50, 100, now=timezone.now())

    before = api.get(f"/api/v1/notice-plans/{rollout.key}/")
    put = api.put(
        f"/api/v1/notice-plans/{rollout.key}/",
        {"rules": [{"audience": audiences["customers"].pk, "event": "phase_upcoming",
                    "lead_time": "02:00:00", "phases": "full"}]},
        format="json",
    )  # fmt: skip

    assert before.json()["is_default"] is True
    assert any(p["audience"] == "Customer support" for p in before.json()["planned"])
    assert put.status_code == 200, put.json()
    assert put.json()["is_default"] is False
    assert [(r["audience_name"], r["event"]) for r in put.json()["rules"]] == [
        ("Customers", "phase_upcoming")
    ]
    assert PlanRule.objects.filter(plan__rollout=rollout).count() == 1


def test_plan__put_invalid_rule__400_names_the_rule(api):
    audiences = standard_audiences()
    rollout = started_rollout(10, 100, now=timezone.now())
    response = api.put(
        f"/api/v1/notice-plans/{rollout.key}/",
        {"rules": [{"audience": audiences["customers"].pk, "event": "completed"},
                   {"audience": audiences["support"].pk, "event": "phase_upcoming"}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["rules.1.lead_time"]


def test_schema__generates_with_notice_endpoints(api):
    response = api.get("/api/schema/?format=json")
    paths = response.json()["paths"]
    assert "/api/v1/notices/{id}/send/" in paths
    assert "/api/v1/notice-plans/{key}/" in paths


@pytest.mark.parametrize("audience", ["9" * 30, "abc"])
def test_notice_list__audience_not_an_id__400_with_message(rm_client, audience):
    response = rm_client.get(f"/api/v1/notices/?audience={audience}")
    assert response.status_code == 400
    assert response.json()["fields"] == {"audience": ["`audience` must be an audience id."]}
