"""SDK usage: Unleash client metrics and registrations stored, OFREP evaluations counted in
process and flushed in aggregate, shown on the flag page; stale flags listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from flags import services, usage
from flags.models import ClientApplication, Flag, FlagUsage
from tests.flags.factories import EnvironmentFactory, SdkKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(django_capture_on_commit_callbacks):
    env = EnvironmentFactory(key="production", name="Production")
    key = SdkKeyFactory(environment=env)
    with django_capture_on_commit_callbacks(execute=True):
        flag = services.flag_create(key="new-search", name="New search", actor=None)
        services.flag_toggle(flag=flag, environment=env, enabled=True, actor=None)
        services.environments_bump()
    usage._take()  # nothing left over from another test
    return env, key, flag


def _post(path, key, body, **headers):
    return Client().post(
        path, data=json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=key.raw, **headers,
    )  # fmt: skip


def _metrics(yes, no, variants=None, app="checkout", instance="i-1"):
    now = timezone.now()
    return {
        "appName": app,
        "instanceId": instance,
        "bucket": {
            "start": (now - timedelta(seconds=60)).isoformat(),
            "stop": now.isoformat(),
            "toggles": {"new-search": {"yes": yes, "no": no, "variants": variants or {}}},
        },
    }


def test_client_metrics__counts_stored_and_added_per_minute(setup):
    env, key, _ = setup
    assert _post("/api/client/metrics", key, _metrics(3, 1, {"fast": 3})).status_code == 202
    assert _post("/api/client/metrics", key, _metrics(2, 0, {"fast": 2})).status_code == 202
    rows = list(FlagUsage.objects.filter(flag_key="new-search"))
    assert sum(r.yes for r in rows) == 5 and sum(r.no for r in rows) == 1
    assert sum(r.variants.get("fast", 0) for r in rows) == 5
    assert {(r.app_name, r.instance_id, r.source, r.environment_id) for r in rows} == {
        ("checkout", "i-1", "unleash", env.id)
    }


@pytest.mark.parametrize(
    "body",
    [
        {"appName": "x", "bucket": "soon"},
        {"appName": "x", "bucket": {"toggles": []}},
        {"appName": "x", "bucket": {"toggles": {"f": {"yes": -1}}}},
        {"appName": "x", "bucket": {"toggles": {"f": {"yes": "many"}}}},
        {"appName": 5, "bucket": {}},
    ],
)
def test_client_metrics__malformed__400_nothing_stored(setup, body):
    _, key, _ = setup
    response = _post("/api/client/metrics", key, body)
    assert response.status_code == 400
    assert response.json()["errorDetails"]
    assert not FlagUsage.objects.exists()


def test_client_register__app_instance_and_sdk_version_remembered(setup):
    env, key, _ = setup
    body = {
        "appName": "checkout",
        "instanceId": "i-7",
        "sdkVersion": "unleash-client-python:6.0.0",
        "strategies": ["default"],
        "started": timezone.now().isoformat(),
        "interval": 15000,
    }
    assert _post("/api/client/register", key, body).status_code == 202
    app = ClientApplication.objects.get()
    assert (app.app_name, app.instance_id, app.sdk_version, app.environment_id) == (
        "checkout", "i-7", "unleash-client-python:6.0.0", env.id,
    )  # fmt: skip


def test_ofrep__evaluations_counted_in_process_and_written_only_on_flush(setup):
    env, key, _ = setup
    for user in ("u1", "u2", "u3"):
        response = _post(
            "/ofrep/v1/evaluate/flags/new-search", key, {"context": {"targetingKey": user}}
        )
        assert response.status_code == 200
    assert not FlagUsage.objects.exists()  # nothing written per request
    assert usage.ofrep_flush() == 3
    row = FlagUsage.objects.get(source="ofrep")
    assert (row.flag_key, row.yes, row.no, row.environment_id) == ("new-search", 3, 0, env.id)
    assert usage.ofrep_flush() == 0


def test_ofrep_bulk__every_flag_counted_once_per_answer_not_on_304(setup):
    _, key, _ = setup
    with_off = services.flag_create(key="dark-mode", name="Dark mode", actor=None)
    services.environments_bump()
    body = {"context": {"targetingKey": "u1"}}
    first = _post("/ofrep/v1/evaluate/flags", key, body)
    assert first.status_code == 200
    assert {f["key"] for f in first.json()["flags"]} == {"new-search", with_off.key}
    again = _post("/ofrep/v1/evaluate/flags", key, body, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304  # the SDK's cached answer: not an evaluation
    assert not FlagUsage.objects.exists()
    assert usage.ofrep_flush() == 2
    rows = {r.flag_key: (r.yes, r.no) for r in FlagUsage.objects.filter(source="ofrep")}
    assert rows == {"new-search": (1, 0), "dark-mode": (0, 1)}


def test_ofrep__counting_switched_off__nothing_counted(setup, settings):
    settings.FLAGS_USAGE_OFREP = False
    _, key, _ = setup
    _post("/ofrep/v1/evaluate/flags/new-search", key, {"context": {"targetingKey": "u1"}})
    _post("/ofrep/v1/evaluate/flags", key, {"context": {"targetingKey": "u1"}})
    assert usage.ofrep_flush() == 0


def test_flag_page__shows_evaluations_and_connected_applications(setup, rm_client):
    _, key, _ = setup
    _post("/api/client/register", key, {"appName": "checkout", "instanceId": "i-1",
                                        "sdkVersion": "unleash-client-python:6.0.0"})  # fmt: skip
    _post("/api/client/metrics", key, _metrics(7, 3))
    html = rm_client.get("/flags/new-search/").content.decode()
    assert "Usage by SDKs" in html
    assert 'data-environment="production"' in html
    assert 'data-app="checkout"' in html
    assert "unleash-client-python:6.0.0" in html
    assert "70.0%" in html  # observed: 7 of 10


def test_stale_flags__unused_and_fully_on_unchanged_listed_with_apps_still_asking(setup, rm_client):
    env, _, flag = setup
    old = timezone.now() - timedelta(days=90)
    Flag.objects.filter(pk=flag.pk).update(created_at=old, updated_at=old)
    flag.states.update(updated_at=old)
    unused = services.flag_create(key="forgotten", name="Forgotten", actor=None)
    Flag.objects.filter(pk=unused.pk).update(created_at=old)
    FlagUsage.objects.create(
        environment=env, flag_key="new-search", app_name="checkout", source="unleash",
        bucket=timezone.now().replace(second=0, microsecond=0), yes=10,
    )  # fmt: skip
    rows = {r["flag"].key: r for r in usage.stale_flags(days=30)}
    assert rows["forgotten"]["reason"] == "not evaluated yet"
    assert rows["new-search"]["reason"].startswith("ready to remove")
    assert rows["new-search"]["apps"] == ["checkout"]
    html = rm_client.get("/flags/stale/").content.decode()
    assert "forgotten" in html and "ready to remove" in html


def test_observed_exposure__yes_share_of_a_time_range(setup):
    env, _, _ = setup
    t0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    usage.usage_add(environment_id=env.id, counts={("new-search", "a", "", "unleash"): (1, 9, {})},
                    bucket=t0)  # fmt: skip
    usage.usage_add(environment_id=env.id, counts={("new-search", "a", "", "unleash"): (5, 5, {})},
                    bucket=t0 + timedelta(minutes=10))  # fmt: skip
    share, n = usage.observed_exposure(
        environment_id=env.id, flag_key="new-search", start=t0, end=t0 + timedelta(minutes=5)
    )
    assert (share, n) == (0.1, 10)
    share, n = usage.observed_exposure(
        environment_id=env.id, flag_key="new-search", start=t0, end=None
    )
    assert (share, n) == (0.3, 20)


def test_usage_add__three_statements_whatever_the_number_of_flags(setup):
    """An SDK may report thousands of flags in one post: the writes stay constant."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    env, _, _ = setup
    t0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    other = ("flag-0", "billing", "i-9", "unleash")  # another app's row: left as it is
    usage.usage_add(environment_id=env.id, counts={other: (7, 0, {})}, bucket=t0)

    def add(n: int, yes: int) -> int:
        counts = {(f"flag-{i}", "checkout", "i-1", "unleash"): (yes, 1, {"a": i}) for i in range(n)}
        counts[("silent", "checkout", "i-1", "unleash")] = (0, 0, {})  # nothing counted: no row
        with CaptureQueriesContext(connection) as ctx:
            usage.usage_add(environment_id=env.id, counts=counts, bucket=t0)
        return len(ctx.captured_queries)

    few, many = add(2, 1), add(40, 2)  # the first two flags now exist, 38 are new
    assert few == many
    assert few <= 5  # a savepoint pair (inside the test's transaction) + three statements
    rows = {r.flag_key: r for r in FlagUsage.objects.filter(app_name="checkout")}
    assert "silent" not in rows and len(rows) == 40
    assert (rows["flag-0"].yes, rows["flag-0"].no, rows["flag-0"].variants) == (3, 2, {"a": 0})
    assert (rows["flag-1"].yes, rows["flag-1"].no, rows["flag-1"].variants) == (3, 2, {"a": 2})
    assert (rows["flag-39"].yes, rows["flag-39"].no, rows["flag-39"].variants) == (2, 1, {"a": 39})
    assert FlagUsage.objects.get(app_name="billing").yes == 7


def test_ofrep_counts__equal_keys_of_two_snapshots__one_row_with_their_sum(setup):
    """Count keys are compared by identity while counting (one per answer of a snapshot);
    the flush adds up keys of equal value, e.g. before and after a config change."""
    env, _, _ = setup
    answer = {"key": "new-search", "value": True, "variant": "fast"}
    before, after = (usage.ofrep_count_key(env.id, answer) for _ in range(2))
    assert before is not after
    usage.ofrep_count_keys([before, None, after, before])  # None: an error answer
    assert usage.ofrep_flush() == 3
    row = FlagUsage.objects.get(source="ofrep")
    assert (row.yes, row.no, row.variants) == (3, 0, {"fast": 3})
