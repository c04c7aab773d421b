"""OFREP endpoints: contract (values, reasons, errors), auth, ETag, CORS and query counts."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.test import Client

from flags import engine, services, snapshot
from tests.flags.factories import EnvironmentFactory, SdkKeyFactory

SINGLE = "/ofrep/v1/evaluate/flags/{}"
BULK = "/ofrep/v1/evaluate/flags"
BETA = ["alice", "carol"]


def _user_in_bucket(group_id: str, *, inside: bool, percentage: int = 50) -> str:
    for i in range(1000):
        user = f"user-{i}"
        if (engine.bucket(group_id, user) <= percentage) == inside:
            return user
    raise AssertionError("no user found")


@pytest.fixture
def machine(db, django_capture_on_commit_callbacks):
    """An environment with one flag per case, an SDK key and a helper to call OFREP."""
    env = EnvironmentFactory(key="production")
    other_env = EnvironmentFactory(key="staging")
    key = SdkKeyFactory(environment=env)
    other_key = SdkKeyFactory(environment=other_env)
    with django_capture_on_commit_callbacks(execute=True):
        beta = services.segment_create(
            name="Beta testers",
            actor=None,
            constraints=[{"contextName": "userId", "operator": "IN", "values": BETA}],
        )

        def make(key_, *, enabled=True, rules=None, **kwargs):
            flag = services.flag_create(key=key_, name=key_, actor=None, **kwargs)
            services.flag_state_update(
                flag=flag, environment=env, actor=None, enabled=enabled, rules=rules or []
            )
            return flag

        make("kill-switch", enabled=False)
        make("always-on")
        make("beta-only", rules=[{"name": "default", "segments": [beta.id]}])
        make(
            "half-rollout",
            rules=[
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "default", "groupId": "half"},
                }
            ],
        )
        make(
            "user-rollout",
            rules=[
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "u"},
                }
            ],
        )
        make(
            "pro-plan",
            rules=[
                {
                    "name": "default",
                    "constraints": [
                        {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]}
                    ],
                }
            ],
        )
        make(
            "checkout-copy",
            type="string",
            variants=[
                {"name": "short", "weight": 500, "payload": {"type": "string", "value": "Buy"}},
                {"name": "long", "weight": 500, "payload": {"type": "string", "value": "Buy now"}},
            ],
        )
        make(
            "price",
            type="number",
            variants=[
                {"name": "discount", "weight": 1000, "payload": {"type": "number", "value": "9.5"}}
            ],
        )
        make(
            "round-price",
            type="number",
            variants=[
                {"name": "whole", "weight": 1000, "payload": {"type": "number", "value": "2.0"}}
            ],
        )
        make(
            "limit",
            type="number",
            variants=[
                {"name": "ten", "weight": 1000, "payload": {"type": "number", "value": "10"}}
            ],
        )
        make(
            "theme",
            type="object",
            variants=[
                {
                    "name": "dark",
                    "weight": 1000,
                    "payload": {"type": "json", "value": '{"bg": "#000", "ratio": 0.5}'},
                }
            ],
        )
        make(
            "off-copy",
            enabled=False,
            type="string",
            variants=[{"name": "a", "weight": 1000, "payload": {"type": "string", "value": "A"}}],
        )
        make(
            "banner",
            variants=[
                {"name": "blue", "weight": 1000, "payload": {"type": "string", "value": "b"}}
            ],
        )

    client = Client()

    def post(url, body=None, *, raw=None, auth=key.raw, **headers):
        if auth is not None:
            headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {auth}")
        data = raw if raw is not None else json.dumps({} if body is None else body)
        return client.post(url, data=data, content_type="application/json", **headers)

    def one(flag_key, context=None, **kwargs):
        body = {"context": context} if context is not None else {}
        return post(SINGLE.format(flag_key), body, **kwargs)

    return SimpleNamespace(
        env=env, key=key, other_key=other_key, client=client, post=post, one=one, beta=beta
    )


def _toggle_committed(machine, capture_on_commit, key: str, *, enabled: bool) -> None:
    """Toggle a flag in the machine's environment as a committed change (snapshots follow)."""
    from flags.models import Flag

    with capture_on_commit(execute=True):
        services.flag_toggle(
            flag=Flag.objects.get(key=key), environment=machine.env, enabled=enabled, actor=None
        )


# --- values and reasons -------------------------------------------------------------------


def test_evaluate_flag__enabled_without_rules__static_true(machine):
    response = machine.one("always-on", {"targetingKey": "u1"})
    assert response.status_code == 200
    assert response.json() == {
        "key": "always-on",
        "value": True,
        "reason": "STATIC",
        "variant": "disabled",
        "metadata": {},
    }


def test_evaluate_flag__disabled_flag__disabled_reason_false(machine):
    body = machine.one("kill-switch", {"targetingKey": "u1"}).json()
    assert (body["value"], body["reason"], body["variant"]) == (False, "DISABLED", "disabled")


def test_evaluate_flag__segment_member__targeting_match(machine):
    assert machine.one("beta-only", {"targetingKey": "alice"}).json()["reason"] == "TARGETING_MATCH"
    body = machine.one("beta-only", {"targetingKey": "bob"}).json()
    assert (body["value"], body["reason"]) == (False, "DEFAULT")


def test_evaluate_flag__constraint_on_custom_attribute__matches_property(machine):
    assert machine.one("pro-plan", {"targetingKey": "u", "plan": "pro"}).json()["value"] is True
    assert machine.one("pro-plan", {"targetingKey": "u", "plan": "free"}).json()["value"] is False


def test_evaluate_flag__percentage_rollout__split_for_users_inside_only(machine):
    inside = _user_in_bucket("half", inside=True)
    outside = _user_in_bucket("half", inside=False)
    body = machine.one("half-rollout", {"targetingKey": inside}).json()
    assert (body["value"], body["reason"]) == (True, "SPLIT")
    body = machine.one("half-rollout", {"targetingKey": outside}).json()
    assert (body["value"], body["reason"]) == (False, "DEFAULT")


def test_evaluate_flag__string_flag__variant_payload_is_value(machine):
    snap = snapshot.get_snapshot(machine.env.id)
    for user in ("u1", "u2", "u3", "u4"):
        expected = snap.evaluate("checkout-copy", {"userId": user})
        body = machine.one("checkout-copy", {"targetingKey": user}).json()
        assert body["variant"] == expected.variant
        assert body["value"] == {"short": "Buy", "long": "Buy now"}[expected.variant]
        assert body["reason"] == "SPLIT"


def test_evaluate_flag__number_payload_with_fraction__stays_float(machine):
    response = machine.one("price", {"targetingKey": "u1"})
    assert b'"value":9.5' in response.content
    round_price = machine.one("round-price", {"targetingKey": "u1"})
    assert b'"value":2.0' in round_price.content
    assert isinstance(round_price.json()["value"], float)


def test_evaluate_flag__whole_number_payload__int(machine):
    body = machine.one("limit", {"targetingKey": "u1"}).json()
    assert body["value"] == 10
    assert isinstance(body["value"], int)
    assert (body["variant"], body["reason"]) == ("ten", "STATIC")


def test_evaluate_flag__object_flag__parsed_json(machine):
    body = machine.one("theme", {"targetingKey": "u1"}).json()
    assert body["value"] == {"bg": "#000", "ratio": 0.5}


def test_evaluate_flag__non_boolean_flag_off__no_value_so_sdk_default(machine):
    body = machine.one("off-copy", {"targetingKey": "u1"}).json()
    assert "value" not in body
    assert (body["reason"], body["variant"]) == ("DISABLED", "disabled")


def test_evaluate_flag__boolean_with_variant__payload_in_metadata(machine):
    body = machine.one("banner", {"targetingKey": "u1"}).json()
    assert body["value"] is True
    assert body["variant"] == "blue"
    assert body["metadata"] == {"payloadType": "string", "payload": "b"}


def test_evaluate_flag__empty_body__empty_context(machine):
    response = machine.post(SINGLE.format("always-on"), raw="")
    assert response.status_code == 200
    assert response.json()["value"] is True


# --- errors -------------------------------------------------------------------------------


def test_evaluate_flag__unknown_flag__ofrep_404(machine):
    response = machine.one("nope", {"targetingKey": "u1"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["key"] == "nope"
    assert body["errorCode"] == "FLAG_NOT_FOUND"
    assert "nope" in body["errorDetails"]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', "\xff"])
def test_evaluate_flag__body_not_a_json_object__parse_error_400(machine, raw):
    response = machine.post(SINGLE.format("always-on"), raw=raw)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert response.json()["errorDetails"]


@pytest.mark.parametrize(
    "body", [{"context": ["a"]}, {"context": "x"}, {"context": {"targetingKey": 42}}]
)
def test_evaluate_flag__bad_context__invalid_context_400(machine, body):
    response = machine.post(SINGLE.format("always-on"), body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"context":{"targetingKey":"\ud800"}}',
        rb'{"context":{"targetingKey":"u1","plan":"\udfff"}}',
        rb'{"context":{"targetingKey":"u1","\ud800":"x"}}',
    ],
)
@pytest.mark.parametrize("path", [SINGLE.format("half-rollout"), BULK])
def test_evaluate__lone_surrogate_in_context__invalid_context_400(machine, raw, path):
    response = machine.post(path, raw=raw)
    assert response.status_code == 400
    assert response.json()["errorCode"] == "INVALID_CONTEXT"
    assert "surrogate" in response.json()["errorDetails"]


@pytest.mark.parametrize("path", [SINGLE.format("half-rollout"), BULK])
def test_evaluate__surrogate_encoded_as_raw_bytes__body_not_utf8_parse_error_400(machine, path):
    # A surrogate written as raw (CESU-8) bytes makes the body invalid UTF-8: refused on parse.
    response = machine.post(path, raw=b'{"context":{"sessionId":"\xed\xa0\x80"}}')
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert response.json()["errorDetails"]


def test_evaluate_flag__split_without_targeting_key__targeting_key_missing_400(machine):
    response = machine.one("half-rollout", {"plan": "pro"})
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "TARGETING_KEY_MISSING"
    assert body["key"] == "half-rollout"


def test_evaluate_flag__default_stickiness_with_session_id__evaluates(machine):
    response = machine.one("half-rollout", {"sessionId": "s-1"})
    assert response.status_code == 200
    assert response.json()["reason"] in {"SPLIT", "DEFAULT"}


def test_evaluate_flag__user_stickiness_with_session_only__targeting_key_missing(machine):
    response = machine.one("user-rollout", {"sessionId": "s-1"})
    assert response.json()["errorCode"] == "TARGETING_KEY_MISSING"


def test_evaluate_flag__no_split__no_targeting_key_needed(machine):
    assert machine.one("beta-only", {}).json()["reason"] == "DEFAULT"
    assert machine.one("always-on").json()["value"] is True


def test_evaluate_flag__disabled_split_flag__no_targeting_key_needed(
    machine, django_capture_on_commit_callbacks
):
    _toggle_committed(machine, django_capture_on_commit_callbacks, "half-rollout", enabled=False)
    assert machine.one("half-rollout", {}).json()["reason"] == "DISABLED"


def test_evaluate_flag__number_flag_with_bad_stored_payload__parse_error_not_500(
    machine, django_capture_on_commit_callbacks
):
    from flags.models import Flag

    flag = Flag.objects.get(key="limit")
    flag.variants = [{"name": "ten", "weight": 1000, "payload": {"type": "number", "value": "x"}}]
    flag.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.environments_bump()
    response = machine.one("limit", {"targetingKey": "u1"})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"


def test_evaluate_flag__unexpected_failure__general_500_json(machine, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("flags.ofrep._answer", boom)
    response = machine.one("always-on", {"targetingKey": "u1"})
    assert response.status_code == 500
    assert response.json()["errorCode"] == "GENERAL"


def test_evaluate_flag__get__405_json(machine):
    response = machine.client.get(
        SINGLE.format("always-on"), HTTP_AUTHORIZATION=f"Bearer {machine.key.raw}"
    )
    assert response.status_code == 405
    assert "POST" in response["Allow"]


# --- auth -----------------------------------------------------------------------------------


def test_evaluate_flag__no_key__401(machine):
    response = machine.one("always-on", {}, auth=None)
    assert response.status_code == 401
    assert "Authorization" in response.json()["errorDetails"]


def test_evaluate_flag__unknown_key__403(machine):
    assert machine.one("always-on", {}, auth="rc_production_wrong").status_code == 403


@pytest.mark.parametrize("header", ["HTTP_X_API_KEY", "HTTP_AUTHORIZATION"])
def test_evaluate_flag__key_in_x_api_key_or_bare_authorization__accepted(machine, header):
    response = machine.one("always-on", {}, auth=None, **{header: machine.key.raw})
    assert response.status_code == 200


def test_evaluate_flag__revoked_key__403_at_once_in_process(
    machine, django_capture_on_commit_callbacks
):
    assert machine.one("always-on", {}).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.sdk_key_revoke(sdk_key=machine.key, actor=None)
    assert machine.one("always-on", {}).status_code == 403


def test_evaluate_flag__key_of_another_named_environment__403(machine):
    response = machine.one(
        "always-on", {}, auth=machine.other_key.raw, HTTP_X_ROLLCALL_ENVIRONMENT="production"
    )
    assert response.status_code == 403
    assert "staging" in response.json()["errorDetails"]
    ok = machine.one("always-on", {}, HTTP_X_ROLLCALL_ENVIRONMENT="production")
    assert ok.status_code == 200


def test_evaluate_flag__key_of_other_environment__answers_for_its_own(machine):
    # "always-on" is off in staging: the key decides the environment.
    body = machine.one("always-on", {}, auth=machine.other_key.raw).json()
    assert body["reason"] == "DISABLED"


def test_evaluate_flag__csrf_enforced_client__still_accepted(machine):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        SINGLE.format("always-on"),
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {machine.key.raw}",
    )
    assert response.status_code == 200


# --- bulk, ETag, CORS ---------------------------------------------------------------------


def test_evaluate_flags__bulk__every_flag_with_per_flag_errors(machine):
    response = machine.post(BULK, {"context": {"plan": "pro"}})
    assert response.status_code == 200
    flags = {f["key"]: f for f in response.json()["flags"]}
    assert flags["pro-plan"]["value"] is True
    assert flags["half-rollout"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert flags["kill-switch"]["reason"] == "DISABLED"
    assert flags["price"]["value"] == 9.5
    assert len(flags) == 13


def test_evaluate_flags__same_etag__304_without_body(machine):
    first = machine.post(BULK, {"context": {"targetingKey": "u1"}})
    etag = first["ETag"]
    assert etag.startswith('"')
    again = machine.post(BULK, {"context": {"targetingKey": "u1"}}, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag


def test_evaluate_flags__other_context__other_etag(machine):
    first = machine.post(BULK, {"context": {"targetingKey": "u1"}})
    other = machine.post(
        BULK, {"context": {"targetingKey": "u2"}}, HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert other.status_code == 200
    assert other["ETag"] != first["ETag"]


def test_evaluate_flags__config_changes__etag_changes(machine, django_capture_on_commit_callbacks):
    from flags.models import Flag

    first = machine.post(BULK, {"context": {"targetingKey": "u1"}})
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_toggle(
            flag=Flag.objects.get(key="kill-switch"),
            environment=machine.env,
            enabled=True,
            actor=None,
        )
    again = machine.post(
        BULK, {"context": {"targetingKey": "u1"}}, HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert again.status_code == 200
    flags = {f["key"]: f for f in again.json()["flags"]}
    assert flags["kill-switch"]["value"] is True


def test_evaluate_flags__bad_json__parse_error(machine):
    response = machine.post(BULK, raw="{")
    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"


def test_cors__preflight__204_with_allowed_headers_without_key(machine):
    response = machine.client.options(
        SINGLE.format("always-on"),
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    allowed = response["Access-Control-Allow-Headers"]
    for header in ("Authorization", "X-API-Key", "Content-Type", "If-None-Match"):
        assert header in allowed
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_cors__answers_and_errors__allow_any_origin_and_expose_etag(machine):
    for response in (machine.post(BULK, {}), machine.one("nope", {}), machine.one("x", auth=None)):
        assert response["Access-Control-Allow-Origin"] == "*"
        assert "ETag" in response["Access-Control-Expose-Headers"]


# --- steady state -------------------------------------------------------------------------


def test_evaluate__warm__zero_queries(machine, django_assert_num_queries):
    machine.one("half-rollout", {"targetingKey": "u1"})
    with django_assert_num_queries(0):
        for flag_key in ("half-rollout", "beta-only", "checkout-copy", "theme"):
            machine.one(flag_key, {"targetingKey": "u2", "plan": "pro"})
        machine.post(BULK, {"context": {"targetingKey": "u3"}})


def test_evaluate__unknown_flag__one_version_check_before_404(machine, django_assert_num_queries):
    # The flag may have been created by another process a moment ago: check before saying no.
    from flags import freshness

    machine.one("half-rollout", {"targetingKey": "u1"})
    # The check is one Redis GET where the cache is shared, else one tiny versions query.
    with django_assert_num_queries(0 if freshness.cache_is_shared() else 1):
        assert machine.one("nope", {"targetingKey": "u2"}).status_code == 404


def test_evaluate__change_in_process__visible_on_next_request(
    machine, django_capture_on_commit_callbacks
):
    from flags.models import Flag

    assert machine.one("kill-switch", {}).json()["value"] is False
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_toggle(
            flag=Flag.objects.get(key="kill-switch"),
            environment=machine.env,
            enabled=True,
            actor=None,
        )
    assert machine.one("kill-switch", {}).json()["value"] is True


# --- the light WSGI path (config.wsgi) ----------------------------------------------------


def _call_wsgi(request):
    from django.core import signals
    from django.db import close_old_connections

    from config.wsgi import application

    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(headers)

    # As Django's test client does: closing connections would end the test transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        response = application(request.environ, start_response)
        body = b"".join(response)
        if hasattr(response, "close"):  # optional in WSGI
            response.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return captured["status"], captured["headers"], body


def test_machine_wsgi__ofrep_request__answered_without_middleware(
    machine, rf, django_assert_num_queries
):
    def request():
        return rf.post(
            SINGLE.format("always-on"),
            data=json.dumps({"context": {"targetingKey": "u1"}}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {machine.key.raw}",
            HTTP_HOST="localhost",
        )

    _call_wsgi(request())  # warm
    with django_assert_num_queries(0):
        status, headers, body = _call_wsgi(request())
    assert status == 200
    assert json.loads(body)["value"] is True
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Frame-Options" not in headers  # the middleware stack did not run


def test_machine_wsgi__other_paths__full_stack(machine, rf):
    status, headers, _ = _call_wsgi(rf.get("/healthz", HTTP_HOST="localhost"))
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY"


def test_machine_wsgi__unknown_host__400(machine, rf):
    request = rf.post(
        BULK,
        data="{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {machine.key.raw}",
        HTTP_HOST="evil.example.com",
    )
    status, _, _ = _call_wsgi(request)
    assert status == 400


def test_evaluate_flag__database_down_on_cold_process__503_retry_after(machine, monkeypatch):
    from django.db import OperationalError

    def down(environment_id):
        raise OperationalError("could not connect")

    monkeypatch.setattr(snapshot, "load", down)
    response = machine.one("always-on", {"targetingKey": "u1"})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["errorCode"] == "GENERAL"


def _wsgi_post(machine, rf, path, raw, **extra):
    request = rf.post(
        path,
        data=raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {machine.key.raw}",
        HTTP_HOST="localhost",
        **extra,
    )
    return _call_wsgi(request)


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (SINGLE.format("half-rollout"), b'{"context":{"targetingKey":"u1"}}'),
        (SINGLE.format("half-rollout"), b'{"context":{"plan":"pro"}}'),
        (SINGLE.format("checkout-copy"), b'{"context":{"targetingKey":"u2"}}'),
        (SINGLE.format("theme"), b""),
        (SINGLE.format("kill-switch"), b"{}"),
        (SINGLE.format("no-such-flag"), b"{}"),
        (SINGLE.format("pro-plan"), b"[1]"),
        (SINGLE.format("pro-plan"), b'{"context":{"targetingKey":"\\ud800"}}'),
        (BULK, b'{"context":{"targetingKey":"u3","plan":"pro"}}'),
        (BULK, b"not json"),
    ],
)
def test_machine_wsgi__light_path__same_answer_as_django_view(machine, rf, path, raw):
    status, headers, body = _wsgi_post(machine, rf, path, raw)
    response = machine.post(path, raw=raw)
    assert status == response.status_code
    assert json.loads(body) == response.json()
    assert headers["Content-Type"] == "application/json"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers.get("ETag") == response.headers.get("ETag")


def test_machine_wsgi__bulk_with_matching_etag__304(machine, rf):
    raw = b'{"context":{"targetingKey":"u3"}}'
    _, headers, _ = _wsgi_post(machine, rf, BULK, raw)
    status, again, body = _wsgi_post(machine, rf, BULK, raw, HTTP_IF_NONE_MATCH=headers["ETag"])
    assert status == 304
    assert body == b""
    assert again["ETag"] == headers["ETag"]


@pytest.mark.parametrize(
    ("auth", "status"), [(None, 401), ("rc_nope_123", 403)], ids=["no key", "unknown key"]
)
def test_machine_wsgi__light_path_without_valid_key__django_answers(machine, rf, auth, status):
    extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
    request = rf.post(
        SINGLE.format("always-on"), data="{}", content_type="application/json",
        HTTP_HOST="localhost", **extra,
    )  # fmt: skip
    if auth is None:
        request.environ.pop("HTTP_AUTHORIZATION", None)
    got, _headers, body = _call_wsgi(request)
    assert got == status
    assert json.loads(body)["errorCode"] == "GENERAL"


def test_machine_wsgi__preflight__django_answers_204(machine, rf):
    request = rf.options(SINGLE.format("always-on"), HTTP_HOST="localhost")
    status, headers, _ = _call_wsgi(request)
    assert status == 204
    assert "POST" in headers["Access-Control-Allow-Methods"]


def test_machine_wsgi__body_over_upload_limit__parse_error_400(machine, rf, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    raw = json.dumps({"context": {"targetingKey": "u", "pad": "x" * 200}}).encode()
    status, _, body = _wsgi_post(machine, rf, SINGLE.format("always-on"), raw)
    assert status == 400
    assert json.loads(body)["errorCode"] == "PARSE_ERROR"


def test_machine_wsgi__unexpected_failure__django_answers_500_json(machine, rf, monkeypatch):
    from flags import ofrep

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(ofrep, "_answer", boom)
    status, _, body = _wsgi_post(machine, rf, SINGLE.format("always-on"), b"{}")
    assert status == 500
    assert json.loads(body)["errorCode"] == "GENERAL"


# --- answers built once per snapshot ----------------------------------------------------------

_CACHE_STATE = {
    "features": [
        {
            "name": "split",
            "enabled": True,
            "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "50"}}],
        },
        {"name": "off", "enabled": False, "strategies": []},
        {
            "name": "colour",
            "enabled": True,
            "strategies": [],
            "variants": [
                {"name": "blue", "weight": 500, "payload": {"type": "string", "value": "b"}},
                {"name": "red", "weight": 500, "payload": {"type": "string", "value": "r"}},
            ],
            "rollcall": {"valueType": "string"},
        },
    ]
}


def _ctx(user: str) -> dict:
    return {"userId": user, "properties": {}}


def test_answers__built_once_per_evaluation_of_a_snapshot_and_equal_to_a_fresh_build():
    from flags import ofrep, snapshot

    compiled = snapshot.compile_state(_CACHE_STATE, environment_id=1, version=1)
    fresh = snapshot.compile_state(_CACHE_STATE, environment_id=1, version=2)
    users = [f"user-{i}" for i in range(200)]
    for key in ("split", "off", "colour"):
        answers = [ofrep.evaluate_one(compiled, key, _ctx(u)) for u in users]
        # Users who get the same evaluation share one answer object...
        assert len({id(a) for a in answers}) == len({repr(a) for a in answers})
        # ...equal to what a snapshot that never answered before builds for them.
        for user, answer in zip(users, answers, strict=True):
            fresh.answers.clear()
            assert answer == ofrep.evaluate_one(fresh, key, _ctx(user))
    variants = {ofrep.evaluate_one(compiled, "colour", _ctx(u))["variant"] for u in users}
    assert variants == {"blue", "red"}
    # 2 for the split flag (on, off), 1 disabled, 2 variants.
    assert len(compiled.answers) == 5


def test_answers__cache_is_capped__answers_stay_right(monkeypatch):
    from flags import ofrep, snapshot

    monkeypatch.setattr(ofrep, "MAX_CACHED_ANSWERS", 1)
    compiled = snapshot.compile_state(_CACHE_STATE, environment_id=1, version=1)
    for user in ("a", "b", "c", "d"):
        assert ofrep.evaluate_one(compiled, "off", _ctx(user))["value"] is False
        variant = ofrep.evaluate_one(compiled, "colour", _ctx(user))
        assert variant["value"] == {"blue": "b", "red": "r"}[variant["variant"]]
    assert len(compiled.answers) == 1


def test_answers__new_snapshot_after_a_change__new_answer(
    machine, django_capture_on_commit_callbacks
):
    on = machine.one("always-on", {"targetingKey": "u1"}).json()
    assert on["value"] is True
    _toggle_committed(machine, django_capture_on_commit_callbacks, "always-on", enabled=False)
    off = machine.one("always-on", {"targetingKey": "u1"}).json()
    assert (off["value"], off["reason"]) == (False, "DISABLED")
