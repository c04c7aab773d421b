"""The rollouts management API at its boundary: status, JSON shape, permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rollouts import services
from rollouts.models import Release, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db
UI = RolloutEvent.Source.UI


@pytest.fixture
def env():
    return EnvironmentFactory(key="staging", name="Staging")


def post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def running(env, **kw) -> Rollout:
    rollout = make_rollout(environment=env, **kw)
    return services.rollout_start(rollout=rollout, actor=None, source=UI)


# --------------------------------------------------------------------------------------------
# Releases


def test_release_api__release_manager_creates__201_with_owner(rm_client, release_manager):
    response = post(
        rm_client,
        "/api/v1/releases",
        {"name": "Checkout", "version": "2.0", "label": "improvement"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["version"], body["owner"]) == ("Checkout", "2.0", "remy")
    assert Release.objects.get(pk=body["id"]).owner == release_manager


def test_release_api__support_creates__403_json_that_says_why(support_client):
    response = post(support_client, "/api/v1/releases", {"name": "Nope"})
    assert response.status_code == 403
    assert response.json()["message"]
    assert not Release.objects.exists()


def test_release_api__support_reads__200(support_client):
    ReleaseFactory(name="Visible")
    response = support_client.get("/api/v1/releases")
    assert response.status_code == 200
    assert [r["name"] for r in response.json()["results"]] == ["Visible"]


def test_release_api__patch__updates_one_field(rm_client):
    release = ReleaseFactory(summary="old")
    response = rm_client.patch(
        f"/api/v1/releases/{release.pk}", {"summary": "new"}, content_type="application/json"
    )
    assert response.status_code == 200
    release.refresh_from_db()
    assert (release.summary, response.json()["summary"]) == ("new", "new")


def test_release_api__invalid_label__400_with_fields(rm_client):
    response = post(rm_client, "/api/v1/releases", {"name": "X", "label": "party"})
    assert response.status_code == 400
    assert "label" in response.json()["fields"]


# --------------------------------------------------------------------------------------------
# Rollouts


def test_rollout_api__create_with_phases__201_and_plan(rm_client, env):
    release = ReleaseFactory(name="Checkout", version="2.0")
    response = post(
        rm_client,
        "/api/v1/rollouts",
        {
            "release": release.pk,
            "environment": "staging",
            "strategy": "canary",
            "timezone": "Europe/Berlin",
            "phases": [
                {"name": "1%", "percentage": 1, "start_rule": "at", "start_at": "2031-05-01T09:00"},
                {"name": "25%", "percentage": 25, "soak": "00:30:00"},
                {"name": "All", "percentage": 100, "soak": "P1D", "gate": "manual"},
            ],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "draft"
    assert body["strategy"] == "canary"
    assert body["environment"] == "staging"
    assert body["flag"] == "checkout-2.0-canary"
    assert [p["percentage"] for p in body["phases"]] == [1, 25, 100]
    assert body["phases"][0]["start_at"].startswith("2031-05-01T07:00")  # 09:00 in Berlin
    assert [p["soak_seconds"] for p in body["phases"]] == [None, 1800, 86400]
    assert body["allowed_actions"] == ["cancel", "edit_plan", "schedule", "start"]


def test_rollout_api__create_with_template__uses_it(rm_client, env):
    release = ReleaseFactory()
    response = post(
        rm_client,
        "/api/v1/rollouts",
        {
            "release": release.pk,
            "environment": "staging",
            "strategy": "rolling",
            "template": "rolling-4-batches",
        },
    )
    assert response.status_code == 201, response.content
    assert [p["percentage"] for p in response.json()["phases"]] == [25, 50, 75, 100]


def test_rollout_api__invalid_phase__400_naming_the_phase_field(rm_client, env):
    release = ReleaseFactory()
    response = post(
        rm_client,
        "/api/v1/rollouts",
        {
            "release": release.pk,
            "environment": "staging",
            "strategy": "feature_flag",
            "phases": [{"name": "a", "percentage": 50}, {"name": "b", "percentage": 20}],
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert "phases.1.percentage" in body["fields"]
    assert "less than" in body["message"]
    assert not Rollout.objects.exists()


def test_rollout_api__unknown_environment__400(rm_client):
    release = ReleaseFactory()
    response = post(
        rm_client,
        "/api/v1/rollouts",
        {"release": release.pk, "environment": "mars", "strategy": "canary"},
    )
    assert response.status_code == 400
    assert "environment" in response.json()["fields"]


def test_rollout_api__support_creates__403(support_client, env):
    release = ReleaseFactory()
    response = post(
        support_client,
        "/api/v1/rollouts",
        {"release": release.pk, "environment": "staging", "strategy": "canary"},
    )
    assert response.status_code == 403
    assert not Rollout.objects.exists()


def test_rollout_api__retrieve__phases_and_state(support_client, env):
    rollout = running(env)
    response = support_client.get(f"/api/v1/rollouts/{rollout.key}")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "running"
    assert body["exposure"] == 10
    assert body["current_phase_index"] == 0
    assert body["phases"][0]["applied_at"] is not None


def test_rollout_api__unknown_key__404_json(support_client):
    response = support_client.get("/api/v1/rollouts/nope")
    assert response.status_code == 404
    assert response.json()["error"]


def test_rollout_api__list__constant_queries_and_filters(support_client, env):
    running(env)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = support_client.get("/api/v1/rollouts?state=running")
        assert response.status_code == 200
        return len(ctx.captured_queries), response.json()

    few, _ = count()
    for _ in range(6):
        running(env, release=ReleaseFactory())
    many, body = count()
    assert few == many
    assert body["count"] == 7
    make_rollout(environment=env)  # a draft
    assert support_client.get("/api/v1/rollouts?state=draft").json()["count"] == 1


@pytest.mark.parametrize(
    ("action", "setup", "state"),
    [
        ("start", None, "running"),
        ("pause", "start", "paused"),
        ("complete", "start", "completed"),
        ("cancel", None, "cancelled"),
        ("rollback", "start", "rolled_back"),
    ],
)
def test_rollout_api__action__200_with_new_state_and_event(rm_client, env, action, setup, state):
    rollout = make_rollout(environment=env)
    if setup:
        post(rm_client, f"/api/v1/rollouts/{rollout.key}/{setup}")
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/{action}", {"reason": "because"})
    assert response.status_code == 200, response.content
    assert response.json()["state"] == state
    event = rollout.events.order_by("-id").first()
    assert event.source == RolloutEvent.Source.API
    assert event.actor.username == "remy"


def test_rollout_api__schedule_and_resume(rm_client, env):
    start = timezone.now() + timedelta(days=2)
    plan = soak_plan(10, 100)
    plan[0].update(start_rule="at", start_at=start)
    rollout = make_rollout(environment=env, phases=plan)
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/schedule")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "scheduled"
    post(rm_client, f"/api/v1/rollouts/{rollout.key}/start")
    post(rm_client, f"/api/v1/rollouts/{rollout.key}/pause")
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/resume")
    assert response.json()["state"] == "running"


def test_rollout_api__illegal_action__400_with_message(rm_client, env):
    rollout = make_rollout(environment=env)
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/pause")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "illegal_transition"
    assert "draft" in body["message"]


def test_rollout_api__advance_without_reason_before_soak_ends__400_on_reason(rm_client, env):
    rollout = running(env)
    response = post(rm_client, f"/api/v1/rollouts/{rollout.key}/advance")
    assert response.status_code == 400
    assert "reason" in response.json()["fields"]
    response = post(
        rm_client,
        f"/api/v1/rollouts/{rollout.key}/advance",
        {"reason": "looks good", "expected_phase_index": 0},
    )
    assert response.status_code == 200
    assert response.json()["current_phase_index"] == 1


def test_rollout_api__advance_after_it_moved__409(rm_client, env):
    rollout = running(env)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="x")
    response = post(
        rm_client,
        f"/api/v1/rollouts/{rollout.key}/advance",
        {"reason": "x", "expected_phase_index": 0},
    )
    assert response.status_code == 409
    assert Rollout.objects.get(pk=rollout.pk).current_phase_index == 1


@pytest.mark.parametrize(
    "action", ["start", "schedule", "pause", "resume", "advance", "complete", "cancel", "rollback"]
)
def test_rollout_api__support_acts__403_and_nothing_changes(support_client, env, action):
    rollout = make_rollout(environment=env)
    response = post(support_client, f"/api/v1/rollouts/{rollout.key}/{action}", {"reason": "x"})
    assert response.status_code == 403
    assert "Release managers" in response.json()["message"]
    assert Rollout.objects.get(pk=rollout.pk).state == "draft"


def test_rollout_api__anonymous__refused(client, env):
    rollout = make_rollout(environment=env)
    assert client.get(f"/api/v1/rollouts/{rollout.key}").status_code in (401, 403)
    assert post(client, f"/api/v1/rollouts/{rollout.key}/start").status_code in (401, 403)


def test_rollout_api__plan_update__200_and_stale_version_409(rm_client, env):
    rollout = make_rollout(environment=env)
    url = f"/api/v1/rollouts/{rollout.key}/plan"
    phases = [{"name": "a", "percentage": 5}, {"name": "b", "percentage": 100, "soak": 60}]
    response = rm_client.put(
        url,
        {"phases": phases, "expected_version": rollout.version},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert [p["percentage"] for p in response.json()["phases"]] == [5, 100]
    assert response.json()["phases"][1]["soak_seconds"] == 60
    stale = rm_client.put(
        url,
        {"phases": phases, "expected_version": rollout.version},
        content_type="application/json",
    )
    assert stale.status_code == 409


def test_rollout_api__events__the_log_in_order(support_client, env):
    rollout = running(env)
    response = support_client.get(f"/api/v1/rollouts/{rollout.key}/events")
    assert response.status_code == 200
    kinds = [e["kind"] for e in response.json()["results"]]
    assert kinds == ["created", "started", "advanced"]


def test_rollout_api__templates__every_strategy(support_client):
    response = support_client.get("/api/v1/rollouts/templates")
    assert response.status_code == 200
    body = response.json()
    assert {s["strategy"] for s in body} == set(Rollout.Strategy.values)
    canary = next(s for s in body if s["strategy"] == "canary")
    assert canary["templates"][0]["name"] == "Canary 1 -> 5 -> 25 -> 100"


def test_openapi__documents_every_rollout_endpoint(admin_client_role):
    response = admin_client_role.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for action in ("start", "pause", "resume", "advance", "rollback", "cancel", "schedule"):
        assert f"/api/v1/rollouts/{{key}}/{action}" in paths
    assert "/api/v1/rollouts/{key}/plan" in paths
    assert "/api/v1/releases" in paths
