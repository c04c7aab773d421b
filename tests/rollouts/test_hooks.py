"""The Alertmanager webhook at its HTTP boundary, including fuzzed bad input (hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flags.models import FlagState
from rollouts import services
from rollouts.models import Hold, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, alert, alert_payload, make_rollout

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def running():
    rollout = make_rollout(environment=EnvironmentFactory(key="staging"))
    return services.rollout_start(rollout=rollout, actor=None, source="ui", now=T0)


def post(client, url: str, body, **headers):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **headers)


def url_for(rollout: Rollout) -> str:
    return f"/hooks/alertmanager/{rollout.alert_secret}"


def fingerprint_of_state(rollout: Rollout) -> tuple:
    """Everything an alert could change."""
    fresh = Rollout.objects.get(pk=rollout.pk)
    flag = FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)
    return (
        fresh.state,
        fresh.version,
        RolloutEvent.objects.filter(rollout=rollout).count(),
        Hold.objects.filter(rollout=rollout).count(),
        flag.version,
    )


def test_hook__firing_via_secret_url__held_and_json_summary(client, running):
    response = post(client, url_for(running), alert_payload(alert(rollout=running.key)))
    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"held": 1}
    assert body["results"][0]["fingerprint"] == "f00dfeed"
    assert Rollout.objects.get(pk=running.pk).state == Rollout.State.HELD


def test_hook__bearer_token__accepted_without_the_secret_in_the_url(client, running):
    response = post(
        client,
        "/hooks/alertmanager",
        alert_payload(alert(rollout=running.key)),
        HTTP_AUTHORIZATION=f"Bearer {running.alert_secret}",
    )
    assert response.status_code == 200
    assert Rollout.objects.get(pk=running.pk).state == Rollout.State.HELD


@pytest.mark.parametrize(
    "how",
    ["wrong-url-secret", "wrong-bearer", "no-auth", "basic-auth", "empty-secret-rollout"],
)
def test_hook__wrong_or_missing_secret__404_and_nothing_changes(client, running, how):
    before = fingerprint_of_state(running)
    payload = alert_payload(alert(rollout=running.key))
    url, headers = "/hooks/alertmanager", {}
    if how == "wrong-url-secret":
        url = "/hooks/alertmanager/" + "x" * 43
    elif how == "wrong-bearer":
        headers = {"HTTP_AUTHORIZATION": "Bearer nope"}
    elif how == "basic-auth":
        headers = {"HTTP_AUTHORIZATION": f"Basic {running.alert_secret}"}
    elif how == "empty-secret-rollout":
        Rollout.objects.filter(pk=running.pk).update(alert_secret="")
        headers = {"HTTP_AUTHORIZATION": "Bearer "}
    response = post(client, url, payload, **headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert fingerprint_of_state(running)[0] == before[0]
    assert fingerprint_of_state(running)[2:] == before[2:]


def test_hook__bad_payload__400_with_the_reason_and_nothing_changes(client, running):
    before = fingerprint_of_state(running)
    response = post(client, url_for(running), {"version": "4", "alerts": [{"status": "maybe"}]})
    assert response.status_code == 400
    body = response.json()
    assert "firing or resolved" in body["message"]
    assert "alerts.0.status" in body["fields"]
    assert fingerprint_of_state(running) == before


def test_hook__one_bad_alert_among_good_ones__whole_request_refused(client, running):
    before = fingerprint_of_state(running)
    payload = alert_payload(alert(rollout=running.key), {"status": "firing", "labels": []})
    assert post(client, url_for(running), payload).status_code == 400
    assert fingerprint_of_state(running) == before


def test_hook__get__405(client, running):
    assert client.get(url_for(running)).status_code == 405


def test_hook__resent_firing__idempotent(client, running):
    payload = alert_payload(alert(rollout=running.key))
    post(client, url_for(running), payload)
    before = fingerprint_of_state(running)
    response = post(client, url_for(running), payload)
    assert response.json()["counts"] == {"duplicate": 1}
    assert fingerprint_of_state(running) == before


# --------------------------------------------------------------------------------------------
# Fuzzing: never a 500; a refused request never changes anything.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
label_sets = st.dictionaries(st.text(max_size=12), json_values, max_size=4)
alert_like = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "", "FIRING", None]) | json_values,
        "labels": label_sets | json_values,
        "annotations": label_sets | json_values,
        "fingerprint": st.text(max_size=200) | json_values,
        "startsAt": st.sampled_from(["2030-01-01T00:00:00Z", "", "soon"]) | json_values,
    },
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from(["4", 4, "3", None]) | json_values,
        "status": st.sampled_from(["firing", "resolved"]) | json_values,
        "alerts": st.lists(alert_like | json_values, max_size=4) | json_values,
        "commonLabels": label_sets | json_values,
    },
)
bodies = (
    payloads.map(json.dumps)
    | json_values.map(json.dumps)
    | st.binary(max_size=200)
    | st.text(max_size=200)
    # Valid payloads in another encoding (json.loads would guess UTF-16/32).
    | st.tuples(
        payloads.map(json.dumps), st.sampled_from(["utf-16", "utf-16-be", "utf-32-le"])
    ).map(lambda pair: pair[0].encode(pair[1]))
    # Deeply nested documents, alone or inside a payload.
    | st.integers(min_value=60, max_value=20_000).map(lambda depth: "[" * depth + "]" * depth)
    | st.tuples(payloads, st.integers(min_value=60, max_value=5_000)).map(
        lambda pair: (
            json.dumps(pair[0])[:-1]
            + (", " if len(pair[0]) else "")
            + '"x": '
            + '{"a": ' * pair[1]
            + "1"
            + "}" * pair[1]
            + "}"
        )
    )
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_hook__fuzzed_bodies__never_500_and_refusals_change_nothing(client, running, body):
    before = fingerprint_of_state(running)
    response = post(client, url_for(running), body)
    assert response.status_code in (200, 400), (response.status_code, body)
    if response.status_code == 400:
        assert response.json()["error"] == "invalid"
        assert fingerprint_of_state(running) == before
    else:
        # Valid but about nothing that matches this rollout: still nothing changes.
        results = response.json()["results"]
        assert all(r["action"] in ("not_matching", "ignored", "duplicate") for r in results)
        assert fingerprint_of_state(running) == before


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(secret=st.text(max_size=80), body=bodies)
def test_hook__fuzzed_secrets__404_and_nothing_changes(client, running, secret, body):
    if secret == running.alert_secret:
        return
    before = fingerprint_of_state(running)
    response = post(client, "/hooks/alertmanager", body, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 404
    assert fingerprint_of_state(running) == before


def test_hook__nul_character_in_a_label__400_and_nothing_changes(client, running):
    before = fingerprint_of_state(running)
    payload = alert_payload(alert(rollout=running.key))
    payload["alerts"][0]["annotations"] = {"summary": "bad\u0000value"}
    response = post(client, url_for(running), payload)
    assert response.status_code == 400
    assert "NUL" in response.json()["message"]
    assert fingerprint_of_state(running) == before


def test_hook__nul_character_in_the_secret__404(client, running):
    response = post(
        client,
        "/hooks/alertmanager",
        alert_payload(alert(rollout=running.key)),
        HTTP_AUTHORIZATION="Bearer abc\x00def",
    )
    assert response.status_code == 404


def test_hook__body_over_the_limit__413_and_nothing_changes(client, running):
    from rollouts.hook_views import MAX_BODY

    before = fingerprint_of_state(running)
    payload = alert_payload(alert(rollout=running.key))
    payload["padding"] = "x" * MAX_BODY
    response = post(client, url_for(running), payload)
    assert response.status_code == 413
    assert response.json()["message"] == f"The body is larger than {MAX_BODY} bytes."
    assert fingerprint_of_state(running) == before
