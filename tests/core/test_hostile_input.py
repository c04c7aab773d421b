"""Hostile input answers 4xx with a message, never a 500: deeply nested and oversized JSON,
non-UTF-8 webhook bodies, absurd pagination, calendar dates the calendar cannot show.

Run on SQLite by default and on PostgreSQL with DATABASE_URL (the integration run): the
pagination overflow was database-specific.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from django.urls import reverse

from core.json_limits import MAX_JSON_DEPTH, loads_bounded
from flags.models import Flag
from rollouts import services as rollout_services
from rollouts.models import Rollout
from tests.rollouts.factories import EnvironmentFactory, alert, alert_payload, make_rollout

pytestmark = pytest.mark.django_db


def nested(depth: int) -> str:
    """A JSON document of `depth` nested arrays."""
    return "[" * depth + "]" * depth


# --------------------------------------------------------------------------------------------
# Nested and oversized JSON to the management API


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 100_000])
@pytest.mark.parametrize(
    "url", ["/api/v1/flags/", "/api/v1/segments/", "/api/v1/rollouts", "/api/v1/releases"]
)
def test_api__deeply_nested_json__400_saying_so(admin_client_role, url, depth):
    body = '{"key": "x", "name": ' + nested(depth) + "}"

    response = admin_client_role.post(url, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["message"] == (
        f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep."
    )


def test_api__nesting_within_the_limit__parsed_as_usual(rm_client, db):
    EnvironmentFactory(key="staging")
    body = {"key": "deep", "name": "Deep", "description": "", "tags": []}
    response = rm_client.post("/api/v1/flags/", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    assert loads_bounded(nested(MAX_JSON_DEPTH)) is not None


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_api__body_over_the_upload_limit__413_saying_so(rm_client):
    body = json.dumps({"key": "big", "name": "Big", "description": "x" * 20_000})

    response = rm_client.post("/api/v1/flags/", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["message"] == "The request body is larger than 10000 bytes."
    assert not Flag.objects.filter(key="big").exists()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_api__json_not_in_utf8__400_saying_so(rm_client, encoding):
    body = json.dumps({"key": "wide", "name": "Wide"}).encode(encoding)

    response = rm_client.post("/api/v1/flags/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["message"] == "The body must be JSON encoded as UTF-8."


# --------------------------------------------------------------------------------------------
# The Alertmanager webhook


@pytest.fixture
def running():
    rollout = make_rollout(environment=EnvironmentFactory(key="staging"))
    return rollout_services.rollout_start(rollout=rollout, actor=None, source="ui")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-32-be"])
def test_hook__body_in_utf16_or_utf32__400_saying_so_nothing_changes(client, running, encoding):
    body = json.dumps(alert_payload(alert(rollout=running.key))).encode(encoding)

    response = client.post(
        f"/hooks/alertmanager/{running.alert_secret}", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["message"] == "The body must be JSON encoded as UTF-8."
    assert Rollout.objects.get(pk=running.pk).state == running.state


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_hook__deeply_nested_body__400_saying_so(client, running, depth):
    body = '{"version": "4", "alerts": [], "commonLabels": {"a": ' + nested(depth) + "}}"

    response = client.post(
        f"/hooks/alertmanager/{running.alert_secret}", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert "nested more than" in response.json()["message"]


# --------------------------------------------------------------------------------------------
# OFREP and the Unleash frontend API (they parse their own bodies)


@pytest.fixture
def sdk_keys(db):
    from flags import services as flag_services
    from flags.models import SdkKey

    env = EnvironmentFactory(key="production")
    _, server = flag_services.sdk_key_create(environment=env, name="server", actor=None)
    _, browser = flag_services.sdk_key_create(
        environment=env, name="browser", actor=None, kind=SdkKey.Kind.FRONTEND
    )
    return server, browser


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 900, 100_000])
def test_ofrep__deeply_nested_context__400_parse_error_saying_so(client, sdk_keys, depth):
    body = '{"context": {"targetingKey": "u1", "deep": ' + nested(depth) + "}}"

    response = client.post(
        "/ofrep/v1/evaluate/flags",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {sdk_keys[0]}",
    )

    assert response.status_code == 400
    assert response.json()["errorCode"] == "PARSE_ERROR"
    assert "nested more than" in response.json()["errorDetails"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 100_000])
def test_frontend_api__deeply_nested_context__400_saying_so(client, sdk_keys, depth):
    body = '{"context": {"userId": "u1", "properties": {"deep": ' + nested(depth) + "}}}"

    response = client.post(
        "/api/frontend", body, content_type="application/json", HTTP_AUTHORIZATION=sdk_keys[1]
    )

    assert response.status_code == 400
    assert "nested more than" in response.content.decode()


# --------------------------------------------------------------------------------------------
# Pagination (the database cannot store these numbers: OverflowError on SQLite, DataError on
# PostgreSQL)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=99999999999999999999", "limit must be between 1 and 1000."),
        ("limit=1001", "limit must be between 1 and 1000."),
        ("limit=0", "limit must be between 1 and 1000."),
        ("limit=-5", "limit must be between 1 and 1000."),
        ("limit=ten", "limit must be a whole number."),
        ("offset=99999999999999999999", "offset must be between 0 and 2147483647."),
        ("offset=-1", "offset must be between 0 and 2147483647."),
    ],
)
@pytest.mark.parametrize("url", ["/api/v1/flags/", "/api/v1/rollouts", "/api/v1/releases"])
def test_api_list__limit_or_offset_out_of_range__400_saying_so(rm_client, url, query, message):
    response = rm_client.get(f"{url}?{query}")

    assert response.status_code == 400
    name = query.split("=")[0]
    assert response.json()["fields"] == {name: [message]}


def test_api_list__limit_and_offset_in_range__a_page(rm_client, db):
    EnvironmentFactory(key="staging")
    for n in range(3):
        rm_client.post(
            "/api/v1/flags/",
            {"key": f"f{n}", "name": f"F{n}"},
            content_type="application/json",
        )

    response = rm_client.get("/api/v1/flags/?limit=1000&offset=1")

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert len(response.json()["results"]) == 2


# --------------------------------------------------------------------------------------------
# The calendar's date range


@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "3000-01-01", "9999-12-31"])
@pytest.mark.parametrize("view", ["month", "week"])
def test_calendar__date_outside_the_range__400_saying_so(rm_client, day, view):
    response = rm_client.get(reverse("rollouts:calendar"), {"date": day, "view": view})

    assert response.status_code == 400
    assert (
        f"The calendar shows dates from 1900-01-01 to 2999-12-31; {day} is outside that range."
        in response.content.decode()
    )


@pytest.mark.parametrize("day", ["1900-01-01", "2999-12-31"])
@pytest.mark.parametrize("view", ["month", "week"])
def test_calendar__first_and_last_dates__shown(rm_client, day, view):
    response = rm_client.get(reverse("rollouts:calendar"), {"date": day, "view": view})

    assert response.status_code == 200
