"""The rollout-safety API at its boundary: status, JSON shape, permissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from rollouts import services
from rollouts.models import Approval, ApprovalPolicy, ChecklistItem, FreezeWindow, Rollout
from tests.rollouts.factories import (
    EnvironmentFactory,
    freeze,
    gate_policy,
    make_rollout,
    phase,
    soak_plan,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def prod():
    return EnvironmentFactory(key="production", name="Production")


def post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def start(rollout, actor=None):
    return services.rollout_start(rollout=rollout, actor=actor, source="api")


@pytest.fixture
def gated(prod, release_manager):
    gate_policy(prod, min_percentage=50)
    rollout = make_rollout(environment=prod, phases=soak_plan(10, 50), actor=release_manager)
    return start(rollout, release_manager)


def test_approvals_api__list_pending__shape_with_progress(rm_client, gated):
    body = rm_client.get("/api/v1/approvals").json()
    [item] = body["results"]
    assert item["rollout"] == gated.key
    assert (item["phase_index"], item["percentage"], item["state"]) == (1, 50, "pending")
    assert (item["required"], item["approvals"], item["requested_by"]) == (1, 0, "remy")


def test_approvals_api__mine__excludes_own_requests(rm_client, gated):
    assert rm_client.get("/api/v1/approvals?mine=true").json()["results"] == []


def test_approvals_api__approve__granted_and_rollout_may_continue(client, approver, gated):
    client.force_login(approver)
    approval = Approval.objects.get()
    response = post(client, f"/api/v1/approvals/{approval.id}/approve", {"comment": "ok"})
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "approved"
    assert response.json()["decisions"][0]["user"] == "alex"


def test_approvals_api__self_approval__400_with_message(rm_client, gated):
    approval = Approval.objects.get()
    response = post(rm_client, f"/api/v1/approvals/{approval.id}/approve")
    assert response.status_code == 400
    assert response.json()["error"] == "self_approval"


def test_approvals_api__decline__held(client, approver, gated):
    client.force_login(approver)
    approval = Approval.objects.get()
    response = post(client, f"/api/v1/approvals/{approval.id}/decline", {"comment": "no"})
    assert response.status_code == 200
    assert Rollout.objects.get(pk=gated.pk).state == "held"


def test_approvals_api__support__403(support_client, gated):
    approval = Approval.objects.get()
    assert post(support_client, f"/api/v1/approvals/{approval.id}/approve").status_code == 403
    assert support_client.get("/api/v1/approvals").status_code == 200


def test_holds_api__hold_list_clear(rm_client, prod):
    rollout = start(make_rollout(environment=prod))
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/hold", {"reason": "latency"})
    assert response.status_code == 200
    assert response.json()["state"] == "held"
    assert response.json()["active_holds"][0]["reason"] == "latency"
    [hold] = rm_client.get(f"/api/v1/rollouts/{rollout.key}/holds?active=true").json()["results"]
    assert hold["kind"] == "manual" and hold["created_by"] == "remy"
    cleared = post(rm_client, f"/api/v1/rollouts/{rollout.key}/holds/{hold['id']}/clear")
    assert cleared.json()["state"] == "paused"
    assert cleared.json()["active_holds"] == []


def test_holds_api__hold_without_reason__400(rm_client, prod):
    rollout = start(make_rollout(environment=prod))
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/hold", {})
    assert response.status_code == 400
    assert "reason" in response.json()["fields"]


def test_holds_api__support_holds__403(support_client, prod):
    rollout = start(make_rollout(environment=prod))
    assert (
        post(support_client, f"/api/v1/rollouts/{rollout.key}/hold", {"reason": "x"}).status_code
        == 403
    )


def test_checklist_api__tick(rm_client, prod):
    plan = [phase("A", 10), phase("B", 100, soak=timedelta(hours=1), checklist=["Sign-off"])]
    rollout = make_rollout(environment=prod, phases=plan)
    [item] = rm_client.get(f"/api/v1/rollouts/{rollout.key}/checklist").json()
    response = post(
        rm_client, f"/api/v1/rollouts/{rollout.key}/checklist/{item['id']}", {"note": "done"}
    )
    assert response.status_code == 200
    assert response.json()["ticked_by"] == "remy"
    assert ChecklistItem.objects.get().note == "done"


def test_rollback_api__freeze_mode(rm_client, prod):
    rollout = start(make_rollout(environment=prod))
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/rollback", {"mode": "freeze"})
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["rollback_mode"]) == ("rolled_back", "freeze")
    assert response.json()["exposure"] == 10


def test_advance_api__inside_freeze__400_then_override(rm_client, prod):
    now = timezone.now()
    rollout = start(make_rollout(environment=prod))
    freeze(
        "Freeze",
        environment=prod,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    refused = post(rm_client, f"/api/v1/rollouts/{rollout.key}/advance", {"reason": "x"})
    assert refused.status_code == 400 and refused.json()["error"] == "window_closed"
    done = post(
        rm_client,
        f"/api/v1/rollouts/{rollout.key}/advance",
        {"reason": "incident", "override_window": True},
    )
    assert done.status_code == 200 and done.json()["current_phase_index"] == 1


def test_windows_api__admin_creates_and_deletes(admin_client_role, prod):
    response = post(
        admin_client_role,
        "/api/v1/windows",
        {"name": "Weekend", "kind": "deny", "environment": "production",
         "timezone": "Europe/Berlin", "cron": "0 18 * * 5", "duration": "2 12:00:00"},
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["environment"], body["cron"], body["duration"]) == (
        "production", "0 18 * * 5", "2 12:00:00"
    )  # fmt: skip
    patched = admin_client_role.patch(
        f"/api/v1/windows/{body['id']}", {"name": "Long weekend"}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Long weekend"
    assert admin_client_role.delete(f"/api/v1/windows/{body['id']}").status_code == 204
    assert not FreezeWindow.objects.exists()


def test_windows_api__bad_cron__400_on_the_field(admin_client_role):
    response = post(
        admin_client_role,
        "/api/v1/windows",
        {"name": "X", "cron": "nightly", "duration": "01:00:00"},
    )
    assert response.status_code == 400
    assert "cron" in response.json()["fields"]


def test_windows_api__release_manager_reads_but_cannot_write(rm_client):
    freeze(
        "F", starts_at=datetime(2030, 1, 1, tzinfo=UTC), ends_at=datetime(2030, 1, 2, tzinfo=UTC)
    )
    assert rm_client.get("/api/v1/windows").status_code == 200
    response = post(rm_client, "/api/v1/windows", {"name": "X", "starts_at": "2030-01-01T00:00:00Z",
                                                   "ends_at": "2030-01-02T00:00:00Z"})  # fmt: skip
    assert response.status_code == 403


def test_policies_api__admin_puts_and_lists(admin_client_role, prod):
    staging = EnvironmentFactory(key="staging")
    response = admin_client_role.put(
        "/api/v1/approval-policies/production",
        {"min_percentage": 50, "approvals_required": 2, "requires_completed_in": "staging"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert ApprovalPolicy.objects.get(environment=prod).requires_completed_in == staging
    [listed] = admin_client_role.get("/api/v1/approval-policies").json()
    assert listed["environment"] == "production" and listed["approvals_required"] == 2


def test_policies_api__release_manager__403(rm_client, prod):
    response = rm_client.put(
        "/api/v1/approval-policies/production",
        {"min_percentage": 0},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_request_approval_api__draft(rm_client, prod):
    gate_policy(prod, min_percentage=0)
    rollout = make_rollout(environment=prod)
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/request-approval")
    assert response.status_code == 200
    assert Approval.objects.filter(rollout=rollout, state="pending").exists()


def test_alert_settings_api__patch(rm_client, prod):
    rollout = make_rollout(environment=prod)
    response = rm_client.patch(
        f"/api/v1/rollouts/{rollout.key}/alert-settings",
        {"alert_policy": "rollback", "alert_matchers": 'team="pay"', "alert_auto_resume": True},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["alert_policy"], body["alert_matchers"], body["alert_auto_resume"]) == (
        "rollback", 'team="pay"', True
    )  # fmt: skip


def test_schema__safety_endpoints_documented(rm_client):
    schema = rm_client.get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/approvals", "/api/v1/approvals/{approval_id}/approve", "/api/v1/windows",
        "/api/v1/rollouts/{key}/holds", "/api/v1/approval-policies/{environment}",
    ):  # fmt: skip
        assert path in schema["paths"], path
