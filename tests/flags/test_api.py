"""Flags management API: CRUD, optimistic concurrency (409), permissions, query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from flags import services
from flags.models import Environment, Flag, FlagState, SdkKey, Segment
from tests.flags.factories import EnvironmentFactory, FlagFactory, FlagStateFactory

BETA = [{"contextName": "userId", "operator": "IN", "values": ["beta-1"]}]


@pytest.fixture
def envs(db):
    return [
        EnvironmentFactory(key="staging", name="Staging", order=0),
        EnvironmentFactory(key="production", name="Production", order=1, is_production=True),
    ]


@pytest.fixture
def flag(envs):
    return services.flag_create(key="new-checkout", name="New checkout", actor=None)


def _state(flag, key="staging"):
    return FlagState.objects.get(flag=flag, environment__key=key)


# --------------------------------------------------------------------------------------------
# Flags


def test_flags_create__release_manager__201_off_everywhere(rm_client, envs, release_manager):
    response = rm_client.post(
        "/api/v1/flags/",
        {
            "key": "search-v2",
            "name": "Search v2",
            "tags": ["search"],
            "variants": [{"name": "a"}, {"name": "b"}],
        },
        content_type="application/json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["key"] == "search-v2"
    assert [v["weight"] for v in body["variants"]] == [500, 500]
    assert [(e["environment"], e["enabled"]) for e in body["environments"]] == [
        ("staging", False),
        ("production", False),
    ]
    assert Flag.objects.get(key="search-v2").owner == release_manager


def test_flags_create__bad_key__400_with_field(rm_client, envs):
    response = rm_client.post("/api/v1/flags/", {"key": "bad key"}, content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert "key" in body["fields"]


def test_flags_list__paginated_with_states(support_client, flag):
    response = support_client.get("/api/v1/flags/", {"q": "check"})

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["results"][0]["key"] == "new-checkout"
    assert body["results"][0]["environments"][0]["version"] == 1


def test_flags_list__bad_lifecycle__400(support_client, flag):
    response = support_client.get("/api/v1/flags/", {"lifecycle": "zombie"})

    assert response.status_code == 400
    assert "lifecycle" in response.json()["fields"]


def _api_list_queries(client, count):
    envs = list(Environment.objects.all())
    for i in range(Flag.objects.count(), count):
        f = FlagFactory(key=f"api-{i:04d}")
        for env in envs:
            FlagStateFactory(flag=f, environment=env)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get("/api/v1/flags/", {"limit": 500})
    assert response.status_code == 200
    assert len(response.json()["results"]) == count
    return len(ctx.captured_queries)


def test_flags_list__queries__constant_in_the_number_of_flags(rm_client, envs):
    assert _api_list_queries(rm_client, 5) == _api_list_queries(rm_client, 120)


def test_flags_update__stale_version__409_with_message(rm_client, flag):
    services.flag_update(flag=flag, actor=None, expected_version=1, name="Changed")

    response = rm_client.patch(
        f"/api/v1/flags/{flag.key}/",
        {"name": "Mine", "version": 1},
        content_type="application/json",
    )

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "changed by someone else" in response.json()["message"]


def test_flags_update__patch_with_version__saved_and_key_unchanged(rm_client, flag):
    response = rm_client.patch(
        f"/api/v1/flags/{flag.key}/",
        {"name": "Checkout", "key": "other", "version": 1},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert (response.json()["key"], response.json()["name"]) == ("new-checkout", "Checkout")
    assert response.json()["version"] == 2


def test_flags_update__without_version__400(rm_client, flag):
    response = rm_client.patch(
        f"/api/v1/flags/{flag.key}/", {"name": "x"}, content_type="application/json"
    )

    assert response.status_code == 400
    assert "version" in response.json()["fields"]


def test_flags_update__put_needs_every_field(rm_client, flag):
    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/", {"name": "x", "version": 1}, content_type="application/json"
    )

    assert response.status_code == 400
    assert {"type", "variants", "tags", "lifecycle"} <= set(response.json()["fields"])


def test_flags_archive__off_everywhere(rm_client, flag, envs):
    services.flag_toggle(flag=flag, environment=envs[0], enabled=True, actor=None)

    response = rm_client.post(f"/api/v1/flags/{flag.key}/archive/", {}, format="json")

    assert response.status_code == 200
    assert response.json()["lifecycle"] == "archived"
    assert not any(e["enabled"] for e in response.json()["environments"])


def test_flags_retrieve__unknown__404_json(support_client, envs):
    response = support_client.get("/api/v1/flags/missing/")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --------------------------------------------------------------------------------------------
# States and rules


def test_flag_state_put__rules_and_enabled__saved_version_bumped(rm_client, flag):
    segment = services.segment_create(name="Beta", constraints=BETA, actor=None)
    rules = [
        {"name": "flexibleRollout", "parameters": {"rollout": "100"}, "segments": [segment.pk]},
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "10", "stickiness": "userId"},
            "constraints": [{"contextName": "plan", "operator": "IN", "values": ["pro"]}],
        },
    ]

    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/environments/staging/",
        {"enabled": True, "rules": rules, "version": 1},
        content_type="application/json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["enabled"], body["version"]) == (True, 2)
    assert body["rules"][0]["segments"] == [segment.pk]
    assert body["rules"][1]["constraints"][0]["values"] == ["pro"]
    assert _state(flag).rules[1]["parameters"]["stickiness"] == "userId"


def test_flag_state_put__stale_version__409_and_unchanged(rm_client, flag):
    services.flag_toggle(flag=flag, environment=_state(flag).environment, enabled=True, actor=None)

    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/environments/staging/",
        {"rules": [], "enabled": False, "version": 1},
        content_type="application/json",
    )

    assert response.status_code == 409
    assert "Reload and try again" in response.json()["message"]
    assert _state(flag).enabled is True


def test_flag_state_put__invalid_rule__400_with_message(rm_client, flag):
    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/environments/staging/",
        {
            "rules": [{"name": "flexibleRollout", "parameters": {"rollout": "150"}}],
            "version": 1,
        },
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["message"] == "Rule 1: rollout must be between 0 and 100."


def test_flag_state_put__unknown_operator__400_field_path(rm_client, flag):
    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/environments/staging/",
        {
            "rules": [{"constraints": [{"contextName": "x", "operator": "LIKE", "values": []}]}],
            "version": 1,
        },
        content_type="application/json",
    )

    assert response.status_code == 400
    assert "rules" in response.json()["fields"]


def test_flag_toggle__on__state_returned(rm_client, flag):
    response = rm_client.post(
        f"/api/v1/flags/{flag.key}/environments/production/toggle/",
        {"enabled": True},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert response.json()["enabled"] is True
    assert _state(flag, "production").enabled is True


def test_flag_states_list__every_environment(support_client, flag):
    response = support_client.get(f"/api/v1/flags/{flag.key}/environments/")

    assert [s["environment"] for s in response.json()] == ["staging", "production"]


# --------------------------------------------------------------------------------------------
# Permissions and authentication


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("post", "/api/v1/flags/", {"key": "x"}),
        ("patch", "/api/v1/flags/new-checkout/", {"name": "x", "version": 1}),
        ("post", "/api/v1/flags/new-checkout/archive/", {}),
        ("put", "/api/v1/flags/new-checkout/environments/staging/", {"version": 1}),
        ("post", "/api/v1/flags/new-checkout/environments/staging/toggle/", {"enabled": True}),
        ("post", "/api/v1/segments/", {"name": "x"}),
        ("post", "/api/v1/environments/", {"key": "qa", "name": "QA"}),
    ],
)
def test_writes__support__403_and_nothing_changes(support_client, flag, method, url, body):
    response = getattr(support_client, method)(url, body, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["error"] in {"permission_denied", "forbidden"}
    assert "permission" in response.json()["message"]
    flag.refresh_from_db()
    assert (flag.name, flag.lifecycle, flag.version) == ("New checkout", "active", 1)
    assert not _state(flag).enabled
    assert not Segment.objects.exists()
    assert not Environment.objects.filter(key="qa").exists()


def test_sdk_keys__support__cannot_even_list(support_client, envs):
    response = support_client.get("/api/v1/environments/staging/sdk-keys/")

    assert response.status_code == 403
    assert "Admins role" in response.json()["message"]


def test_sdk_keys__release_manager__403(rm_client, envs):
    assert rm_client.get("/api/v1/environments/staging/sdk-keys/").status_code == 403
    assert (
        rm_client.post(
            "/api/v1/environments/staging/sdk-keys/",
            {"name": "x"},
            content_type="application/json",
        ).status_code
        == 403
    )


def test_environments_write__release_manager__403(rm_client, envs):
    response = rm_client.patch(
        "/api/v1/environments/staging/", {"name": "QA"}, content_type="application/json"
    )

    assert response.status_code == 403


def test_sdk_key__as_api_credential__refused(client, envs):
    _, raw = services.sdk_key_create(environment=envs[0], name="svc", actor=None)

    for headers in (
        {"HTTP_AUTHORIZATION": f"Bearer {raw}"},
        {"HTTP_AUTHORIZATION": raw},
        {"HTTP_AUTHORIZATION": f"Token {raw}"},
        {"HTTP_X_API_KEY": raw},
    ):
        response = client.get("/api/v1/flags/", **headers)
        assert response.status_code in (401, 403), headers


def test_api_token__release_manager__authenticates(client, flag, release_manager):
    token = Token.objects.create(user=release_manager)

    response = client.get("/api/v1/flags/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200
    assert response.json()["count"] == 1


# --------------------------------------------------------------------------------------------
# Segments


def test_segments_crud__release_manager(rm_client, db):
    created = rm_client.post(
        "/api/v1/segments/",
        {"name": "Beta testers", "constraints": BETA},
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]

    updated = rm_client.patch(
        f"/api/v1/segments/{pk}/",
        {"description": "Opted in", "version": 1},
        content_type="application/json",
    )
    assert updated.status_code == 200
    assert (updated.json()["description"], updated.json()["version"]) == ("Opted in", 2)
    assert updated.json()["constraints"][0]["values"] == ["beta-1"]

    stale = rm_client.patch(
        f"/api/v1/segments/{pk}/",
        {"description": "x", "version": 1},
        content_type="application/json",
    )
    assert stale.status_code == 409

    assert rm_client.delete(f"/api/v1/segments/{pk}/").status_code == 204
    assert not Segment.objects.exists()


def test_segments_delete__in_use__400_naming_the_rule(rm_client, flag):
    segment = services.segment_create(name="Beta", constraints=BETA, actor=None)
    services.flag_state_update(
        flag=flag,
        environment=_state(flag).environment,
        rules=[{"name": "default", "segments": [segment.pk]}],
        actor=None,
    )

    response = rm_client.delete(f"/api/v1/segments/{segment.pk}/")

    assert response.status_code == 400
    assert response.json()["error"] == "in_use"
    assert "new-checkout (Staging, rule 1)" in response.json()["message"]


# --------------------------------------------------------------------------------------------
# Environments and SDK keys (admins)


def test_environments__admin_create_and_rename(admin_client_role, flag):
    created = admin_client_role.post(
        "/api/v1/environments/",
        {"key": "qa", "name": "QA", "is_production": False},
        content_type="application/json",
    )
    assert created.status_code == 201
    assert FlagState.objects.filter(flag=flag, environment__key="qa").exists()

    renamed = admin_client_role.patch(
        "/api/v1/environments/qa/", {"name": "Quality"}, content_type="application/json"
    )
    assert renamed.json()["name"] == "Quality"


def test_environments_list__support__ordered(support_client, envs):
    response = support_client.get("/api/v1/environments/")

    assert [e["key"] for e in response.json()] == ["staging", "production"]


def test_sdk_keys__admin__raw_key_once_then_masked_then_revoked(admin_client_role, envs):
    created = admin_client_role.post(
        "/api/v1/environments/staging/sdk-keys/",
        {"name": "checkout-service"},
        content_type="application/json",
    )
    assert created.status_code == 201
    assert created["Cache-Control"] == "no-store"
    raw = created.json()["key"]
    assert SdkKey.objects.get().key_hash == SdkKey.hash(raw)

    listed = admin_client_role.get("/api/v1/environments/staging/sdk-keys/").json()
    assert "key" not in listed[0]
    assert raw not in str(listed)
    assert listed[0]["masked"].endswith("…")

    revoked = admin_client_role.post(f"/api/v1/sdk-keys/{listed[0]['id']}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["active"] is False


def test_schema__flags_paths_documented(rm_client):
    response = rm_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    paths = response.json()["paths"]
    assert "/api/v1/flags/{key}/environments/{env}/" in paths
    assert "409" in paths["/api/v1/flags/{key}/environments/{env}/"]["put"]["responses"]
    assert "/api/v1/environments/{key}/sdk-keys/" in paths
