"""Import / export: all-or-nothing validation, segment mapping, round trip, the API."""

from __future__ import annotations

import copy
import json

import pytest
from django.test import Client

from core.exceptions import ApplicationError
from flags import engine, services, snapshot
from flags.importexport import flags_export, flags_import
from flags.models import Environment, Flag, FlagState, Segment
from tests.flags.factories import EnvironmentFactory, SdkKeyFactory, SegmentFactory

# What an Unleash server's /api/client/features answers: legacy strategies, segments, variants.
UNLEASH_DOCUMENT = {
    "version": 2,
    "features": [
        {
            "name": "legacy.users",
            "type": "release",
            "enabled": True,
            "stale": False,
            "strategies": [{"name": "userWithId", "parameters": {"userIds": "alice, bob"}}],
        },
        {
            "name": "legacy.gradual",
            "enabled": True,
            "strategies": [
                {"name": "gradualRolloutUserId", "parameters": {"percentage": 40, "groupId": "g"}},
                {
                    "name": "gradualRolloutSessionId",
                    "parameters": {"percentage": "10", "groupId": "g"},
                },
            ],
        },
        {
            "name": "legacy.random",
            "enabled": False,
            "strategies": [{"name": "gradualRolloutRandom", "parameters": {"percentage": "5"}}],
        },
        {
            "name": "office-only",
            "enabled": True,
            "strategies": [
                {
                    "id": "6a1e",
                    "name": "remoteAddress",
                    "parameters": {"IPs": "10.0.0.0/8, 192.168.1.7"},
                }
            ],
        },
        {
            "name": "beta.checkout",
            "enabled": True,
            "stale": True,
            "impressionData": True,
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {
                        "rollout": "50",
                        "stickiness": "default",
                        "groupId": "beta.checkout",
                    },
                    "constraints": [
                        {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "1.2.0"},
                        {
                            "contextName": "country",
                            "operator": "IN",
                            "values": ["NO", "SE"],
                            "caseInsensitive": True,
                        },
                    ],
                    "segments": [7],
                    "variants": [
                        {
                            "name": "red",
                            "weight": 500,
                            "weightType": "variable",
                            "stickiness": "default",
                        },
                        {
                            "name": "blue",
                            "weight": 500,
                            "weightType": "variable",
                            "stickiness": "default",
                        },
                    ],
                },
                {"name": "default", "parameters": {}, "constraints": [], "segments": [8]},
            ],
            "variants": [],
        },
        {
            "name": "beta.child",
            "enabled": True,
            "strategies": [{"name": "default"}],
            "dependencies": [{"feature": "beta.checkout", "variants": ["red"]}],
        },
    ],
    "segments": [
        {
            "id": 7,
            "name": "Beta testers",
            "constraints": [
                {
                    "contextName": "userId",
                    "operator": "IN",
                    "values": ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"],
                }
            ],
        },
        {
            "id": 8,
            "name": "Staff",
            "constraints": [
                {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.io"]}
            ],
        },
    ],
}


def _contexts():
    for i in range(60):
        yield {
            "userId": f"u{i % 12}",
            "sessionId": f"s{i}",
            "remoteAddress": ["10.1.2.3", "192.168.1.7", "8.8.8.8"][i % 3],
            "properties": {
                "appVersion": ["1.1.0", "1.2.0", "2.0.0"][i % 3],
                "country": ["no", "SE", "DK"][i % 3],
                "email": ["a@acme.io", "b@example.com"][i % 2],
            },
        }


def _counts():
    return (
        Flag.objects.count(),
        FlagState.objects.count(),
        Segment.objects.count(),
        Environment.objects.count(),
        list(Environment.objects.values_list("config_version", flat=True)),
        list(FlagState.objects.values_list("enabled", "rules")),
    )


@pytest.fixture
def production(db):
    return EnvironmentFactory(key="production")


def _strip_ids(document):
    document = copy.deepcopy(document)
    for feature in document["features"]:
        for strategy in feature["strategies"]:
            strategy.pop("id", None)
    return document


def test_flags_import__unleash_document__evaluates_like_unleash(
    production, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    assert sorted(result.created_flags) == sorted(f["name"] for f in UNLEASH_DOCUMENT["features"])
    assert sorted(result.created_segments) == ["Beta testers", "Staff"]
    original = engine.compile_snapshot(UNLEASH_DOCUMENT)
    served = snapshot.get_snapshot(production.id)
    checked = 0
    for ctx in _contexts():
        for feature in UNLEASH_DOCUMENT["features"]:
            name = feature["name"]
            if name == "legacy.random":
                continue
            expected = original.evaluate(name, ctx)
            actual = served.evaluate(name, ctx)
            assert (actual.enabled, actual.variant) == (expected.enabled, expected.variant), (
                name,
                ctx,
            )
            checked += expected.enabled
    assert checked > 20  # the contexts switch flags on, not only off


def test_flags_import__details__kept(production):
    flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    beta = Flag.objects.get(key="beta.checkout")
    assert beta.lifecycle == Flag.Lifecycle.STALE
    assert beta.impression_data is True
    assert Flag.objects.get(key="beta.child").dependencies == [
        {"feature": "beta.checkout", "enabled": True, "variants": ["red"]}
    ]
    state = FlagState.objects.get(flag__key="office-only", environment=production)
    assert state.rules[0]["name"] == "remoteAddress"
    assert "id" not in state.rules[0]


def test_flags_import__segments__matched_by_name_and_ids_mapped(production):
    existing = SegmentFactory(name="beta testers", constraints=[])
    for _ in range(3):
        SegmentFactory()
    flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    existing.refresh_from_db()
    assert existing.constraints[0]["values"][0] == "u1"  # updated from the file
    staff = Segment.objects.get(name="Staff")
    rules = FlagState.objects.get(flag__key="beta.checkout", environment=production).rules
    assert rules[0]["segments"] == [existing.id]
    assert rules[1]["segments"] == [staff.id]
    assert Segment.objects.filter(name__iexact="beta testers").count() == 1


def test_flags_import__other_environments__get_off_states(production):
    staging = EnvironmentFactory(key="staging")
    flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    states = FlagState.objects.filter(environment=staging)
    assert states.count() == len(UNLEASH_DOCUMENT["features"])
    assert not any(s.enabled for s in states)


def test_flags_import__twice__second_changes_nothing(production):
    flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    before = _counts()
    result = flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    assert result.created_flags == result.updated_flags == []
    assert len(result.unchanged_flags) == len(UNLEASH_DOCUMENT["features"])
    assert _counts() == before


def test_flags_import__several_problems__all_reported_nothing_changed(production):
    flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    before = _counts()
    bad = copy.deepcopy(UNLEASH_DOCUMENT)
    bad["features"][0]["enabled"] = False  # a valid change that must not be applied
    bad["features"].append({"name": "bad key!", "enabled": True})
    bad["features"].append({"name": "x", "enabled": True, "strategies": [{"name": "custom"}]})
    bad["features"].append(
        {"name": "y", "enabled": True, "strategies": [{"name": "default", "segments": [99]}]}
    )
    bad["features"].append(
        {"name": "z", "enabled": True, "dependencies": [{"feature": "missing-parent"}]}
    )
    bad["features"].append(
        {
            "name": "n",
            "enabled": True,
            "rollcall": {"valueType": "number"},
            "variants": [
                {"name": "a", "weight": 1000, "payload": {"type": "number", "value": "ten"}}
            ],
        }
    )
    bad["segments"].append(
        {"id": 9, "name": "Broken", "constraints": [{"contextName": "a", "operator": "LIKE"}]}
    )
    with pytest.raises(ApplicationError) as info:
        flags_import(environment=production, data=bad, actor=None)
    lines = info.value.message.splitlines()
    assert lines[0].startswith("Nothing was imported: fix 2 problem(s)")
    report = "\n".join(lines[1:])
    for fragment in ("bad key!", "not a number"):
        assert fragment in report
    assert _counts() == before


def test_flags_import__what_unleash_tolerates__kept_false_and_warned(production):
    document = {
        "features": [
            {"name": "x", "enabled": True, "strategies": [{"name": "custom"}]},
            {"name": "y", "enabled": True, "strategies": [{"name": "default", "segments": [99]}]},
            {"name": "z", "enabled": True, "dependencies": [{"feature": "missing-parent"}]},
            {"name": "w", "enabled": True, "strategies": [{"name": "default", "segments": [9]}]},
        ],
        "segments": [{"id": 9, "constraints": [{"contextName": "a", "operator": "LIKE"}]}],
    }
    result = flags_import(environment=production, data=document, actor=None)
    assert sorted(result.created_flags) == ["w", "x", "y", "z"]
    report = "\n".join(result.warnings)
    for fragment in ("'custom'", "segment 99", "missing-parent", "'LIKE'", "'Segment 9'"):
        assert fragment in report
    assert "warning(s)" in result.summary()
    snap = snapshot.get_snapshot(production.id)
    assert [snap.is_enabled(key, {"properties": {"a": "1"}}) for key in "wxyz"] == [False] * 4


def test_flags_import__failure_while_writing__rolled_back(production, monkeypatch):
    before = _counts()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "environments_bump", fail)
    with pytest.raises(RuntimeError):
        flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    assert _counts() == before


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"features": "x"},
        {"features": [1]},
        {"features": [], "segments": [{"id": "a", "name": "S"}]},
    ],
)
def test_flags_import__malformed_document__application_error(production, data):
    with pytest.raises(ApplicationError, match="Nothing was imported"):
        flags_import(environment=production, data=data, actor=None)


def test_flags_import__missing_environment__error_unless_create(db):
    with pytest.raises(ApplicationError, match="no environment 'qa'"):
        flags_import(environment="qa", data=UNLEASH_DOCUMENT, actor=None)
    assert not Environment.objects.filter(key="qa").exists()
    result = flags_import(
        environment="qa", data=UNLEASH_DOCUMENT, actor=None, create_environment=True
    )
    assert result.created_environment is True
    assert result.environment.key == "qa"


def test_flags_export__then_import_elsewhere__same_document(
    production, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
        flag = Flag.objects.get(key="legacy.users")
        services.flag_state_update(
            flag=flag,
            environment=production,
            actor=None,
            rules=[
                *FlagState.objects.get(flag=flag, environment=production).rules,
                {"name": "default", "disabled": True, "title": "Everyone, later"},
            ],
        )
    exported = flags_export(environment=production)
    assert json.loads(json.dumps(exported)) == exported
    assert (
        exported["features"][[f["name"] for f in exported["features"]].index("legacy.users")][
            "strategies"
        ][-1]["disabled"]
        is True
    )
    flags_import(environment="copy", data=exported, actor=None, create_environment=True)
    again = flags_export(environment=Environment.objects.get(key="copy"))
    assert _strip_ids(again) == _strip_ids(exported)


# --- management API ---------------------------------------------------------------------------


def _post_import(client, key, data, query=""):
    return client.post(
        f"/api/v1/environments/{key}/import{query}",
        data=json.dumps(data),
        content_type="application/json",
    )


def test_import_api__release_manager__imports(production, rm_client):
    response = _post_import(rm_client, "production", UNLEASH_DOCUMENT)
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["created_flags"]) == len(UNLEASH_DOCUMENT["features"])
    assert body["environment"] == "production"
    assert Flag.objects.count() == len(UNLEASH_DOCUMENT["features"])


def test_import_api__invalid_document__400_with_report_nothing_changed(production, rm_client):
    bad = {
        "features": [
            {"name": "a b"},
            {"name": "ok", "strategies": [{"name": "default", "parameters": {"rollout": "150"}}]},
        ]
    }
    response = _post_import(rm_client, "production", bad)
    assert response.status_code == 400
    assert response.json()["message"].count("\n- ") == 2
    assert Flag.objects.count() == 0


def test_import_api__what_unleash_tolerates__imported_with_warnings(production, rm_client):
    document = {
        "features": [
            {"name": "ok", "enabled": True},
            {"name": "z", "enabled": True, "dependencies": [{"feature": "missing-parent"}]},
        ]
    }
    response = _post_import(rm_client, "production", document)
    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(body["created_flags"]) == ["ok", "z"]
    assert len(body["warnings"]) == 1
    assert "missing-parent" in body["warnings"][0]


def test_import_api__clean_document__no_warnings(production, rm_client):
    response = _post_import(rm_client, "production", UNLEASH_DOCUMENT)
    assert response.json()["warnings"] == []


def test_import_api__support__403(production, support_client):
    response = _post_import(support_client, "production", UNLEASH_DOCUMENT)
    assert response.status_code == 403
    assert Flag.objects.count() == 0


def test_import_api__anonymous__refused(production):
    assert _post_import(Client(), "production", UNLEASH_DOCUMENT).status_code in (401, 403)


def test_import_api__sdk_key__refused(production):
    key = SdkKeyFactory(environment=production)
    response = Client().post(
        "/api/v1/environments/production/import",
        data=json.dumps(UNLEASH_DOCUMENT),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key.raw}",
    )
    assert response.status_code in (401, 403)
    assert Flag.objects.count() == 0


def test_import_api__create_environment__admins_only(db, rm_client, admin_user_role):
    denied = _post_import(rm_client, "qa", UNLEASH_DOCUMENT, "?create=true")
    assert denied.status_code == 403
    assert "Admins" in denied.json()["message"]
    admin = Client()
    admin.force_login(admin_user_role)
    assert _post_import(admin, "qa", UNLEASH_DOCUMENT, "?create=true").status_code == 200
    assert Environment.objects.filter(key="qa").exists()


def test_import_api__unknown_environment__404(db, rm_client):
    assert _post_import(rm_client, "qa", UNLEASH_DOCUMENT).status_code == 404


def test_export_api__support__document(production, support_client):
    flags_import(environment=production, data=UNLEASH_DOCUMENT, actor=None)
    response = support_client.get("/api/v1/environments/production/export")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(flags_export(environment=production)))


def test_openapi__import_and_export__documented(admin_client_role):
    response = admin_client_role.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "post" in paths["/api/v1/environments/{key}/import"]
    assert "get" in paths["/api/v1/environments/{key}/export"]
