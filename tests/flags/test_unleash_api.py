"""Unleash client API: the features document, ETag / 304, auth, register and metrics."""

from __future__ import annotations

import pytest
from django.test import Client

from flags import engine, services, snapshot
from flags.models import Flag
from tests.flags.factories import EnvironmentFactory, SdkKeyFactory

FEATURES = "/api/client/features"


@pytest.fixture
def setup(db, django_capture_on_commit_callbacks):
    env = EnvironmentFactory(key="production")
    key = SdkKeyFactory(environment=env)
    with django_capture_on_commit_callbacks(execute=True):
        segment = services.segment_create(
            name="Internal",
            actor=None,
            constraints=[
                {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.io"]}
            ],
        )
        flag = services.flag_create(
            key="new-search",
            name="New search",
            actor=None,
            variants=[{"name": "fast", "weight": 1000, "stickiness": "default"}],
        )
        services.flag_state_update(
            flag=flag,
            environment=env,
            actor=None,
            enabled=True,
            rules=[
                {
                    "name": "flexibleRollout",
                    "parameters": {
                        "rollout": "25",
                        "stickiness": "userId",
                        "groupId": "new-search",
                    },
                    "constraints": [
                        {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "2.0.0"}
                    ],
                    "segments": [segment.id],
                }
            ],
        )
        archived = services.flag_create(key="old", name="Old", actor=None)
        services.flag_toggle(flag=archived, environment=env, enabled=True, actor=None)
        Flag.objects.filter(pk=archived.pk).update(lifecycle=Flag.Lifecycle.ARCHIVED)
        services.environments_bump()
    return env, key, segment


def _get(key_raw, **headers):
    return Client().get(FEATURES, HTTP_AUTHORIZATION=key_raw, **headers)


def test_client_features__unleash_sdk_header__unleash_document(setup):
    _, key, segment = setup
    response = _get(key.raw, HTTP_UNLEASH_APPNAME="checkout")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["version"] == 2
    assert [f["name"] for f in body["features"]] == ["new-search"]  # archived left out
    feature = body["features"][0]
    assert feature["enabled"] is True
    assert feature["type"] == "release"
    # SEMVER_GTE is served as SEMVER_GT OR SEMVER_EQ: two strategies, the SDKs' operators.
    first, second = feature["strategies"]
    assert first["name"] == second["name"] == "flexibleRollout"
    assert first["parameters"] == {"rollout": "25", "stickiness": "userId", "groupId": "new-search"}
    assert first["segments"] == second["segments"] == [segment.id]
    assert [first["constraints"][0]["operator"], second["constraints"][0]["operator"]] == [
        "SEMVER_GT",
        "SEMVER_EQ",
    ]
    assert feature["variants"][0]["name"] == "fast"
    assert body["segments"] == [
        {"id": segment.id, "name": "Internal", "constraints": segment.constraints}
    ]


def test_client_features__document__compiles_to_the_served_snapshot(setup):
    env, key, _ = setup
    served = engine.compile_snapshot(_get(key.raw).json())
    snap = snapshot.get_snapshot(env.id)
    for i in range(200):
        ctx = {"userId": f"u{i}", "properties": {"email": "x@acme.io", "appVersion": "2.1.0"}}
        assert served.evaluate("new-search", ctx) == snap.evaluate("new-search", ctx)


def test_client_features__if_none_match__304(setup):
    _, key, _ = setup
    first = _get(key.raw)
    again = _get(key.raw, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again["ETag"] == first["ETag"]
    assert _get(key.raw, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_client_features__change__new_etag(setup, django_capture_on_commit_callbacks):
    env, key, _ = setup
    first = _get(key.raw)
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_toggle(
            flag=Flag.objects.get(key="new-search"), environment=env, enabled=False, actor=None
        )
    again = _get(key.raw, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert again.json()["features"][0]["enabled"] is False


def test_client_features__warm__zero_queries(setup, django_assert_num_queries):
    _, key, _ = setup
    _get(key.raw)
    with django_assert_num_queries(0):
        assert _get(key.raw).status_code == 200


def test_client_features__no_key__401_and_bad_key__403(setup):
    assert Client().get(FEATURES).status_code == 401
    assert _get("rc_production_nope").status_code == 403


def test_client_features__bearer_and_x_api_key__accepted(setup):
    _, key, _ = setup
    assert _get(f"Bearer {key.raw}").status_code == 200
    assert Client().get(FEATURES, HTTP_X_API_KEY=key.raw).status_code == 200


def test_client_features__post__405(setup):
    _, key, _ = setup
    assert Client().post(FEATURES, HTTP_AUTHORIZATION=key.raw).status_code == 405


@pytest.mark.parametrize("path", ["/api/client/register", "/api/client/metrics"])
def test_client_register_and_metrics__key__202(setup, path):
    _, key, _ = setup
    response = Client().post(
        path,
        data='{"appName": "checkout", "instanceId": "i-1", "bucket": {}}',
        content_type="application/json",
        HTTP_AUTHORIZATION=key.raw,
    )
    assert response.status_code == 202
    assert Client().post(path, data="{}", content_type="application/json").status_code == 401


def test_management_api__sdk_key__refused(setup):
    env, key, _ = setup
    for header in (f"Bearer {key.raw}", f"Token {key.raw}", key.raw):
        response = Client().get(f"/api/v1/environments/{env.key}/export", HTTP_AUTHORIZATION=header)
        assert response.status_code in (401, 403)
