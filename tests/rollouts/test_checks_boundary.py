"""Guarded phases at their boundaries: the checks page and the rollout page section (UI),
the checks API (status, JSON shape, permissions), and the check chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollouts import services
from rollouts.check_charts import Point, check_chart_svg
from rollouts.models import PhaseCheck, PrometheusSource
from tests.rollouts.factories import EnvironmentFactory, make_rollout, phase
from tests.rollouts.prometheus_stub import PrometheusStub

pytestmark = pytest.mark.django_db
T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def prometheus():
    stub = PrometheusStub()
    yield stub
    stub.close()


@pytest.fixture
def rollout(prometheus):
    env = EnvironmentFactory(key="staging", name="Staging")
    PrometheusSource.objects.create(environment=env, url=prometheus.url)
    check = {"name": "Error ratio", "query": 'errors{flag="{flag}"}', "threshold": 0.01}
    return make_rollout(
        environment=env,
        key="checkout-v2",
        phases=[phase("10%", 10, checks=[check]), phase("100%", 100, soak=timedelta(minutes=5))],
    )


def test_rollout_page__shows_checks_with_their_chart(rm_client, rollout, prometheus):
    services.rollout_start(rollout=rollout, actor=None, source="ui")
    prometheus.values = [0.5]
    services.checks_evaluate()
    html = rm_client.get(f"/rollouts/{rollout.key}/").content.decode()
    assert "Guarded phases" in html
    assert 'data-check="Error ratio"' in html
    assert 'class="chart checks"' in html
    assert 'data-status="fail"' in html
    assert 'data-threshold="0.01"' in html


def test_checks_page__add_and_remove_a_check(rm_client, rollout):
    phase_id = rollout.phases.get(order=1).id
    response = rm_client.post(
        f"/rollouts/{rollout.key}/checks/add/",
        {
            "phase": phase_id,
            "name": "p99",
            "query": "latency_p99",
            "comparison": "<",
            "threshold": "0.3",
            "failures_to_trip": "2",
        },
    )
    assert response.status_code == 302
    check = PhaseCheck.objects.get(name="p99")
    assert (check.phase_id, check.threshold, check.failures_to_trip) == (phase_id, 0.3, 2)
    assert "latency_p99" in rm_client.get(f"/rollouts/{rollout.key}/checks/").content.decode()
    rm_client.post(f"/rollouts/{rollout.key}/checks/{check.id}/delete/")
    assert not PhaseCheck.objects.filter(name="p99").exists()


def test_checks_page__bad_threshold__error_message_nothing_stored(rm_client, rollout):
    response = rm_client.post(
        f"/rollouts/{rollout.key}/checks/add/",
        {"phase": rollout.phases.first().id, "name": "x", "query": "up", "threshold": "high"},
        follow=True,
    )
    assert response.status_code == 200
    assert "The threshold must be a number." in response.content.decode()
    assert not PhaseCheck.objects.filter(name="x").exists()


def test_checks_page__test_this_query_now__shows_value_and_query_sent(
    rm_client, rollout, prometheus
):
    prometheus.values = [0.002]
    response = rm_client.post(
        f"/rollouts/{rollout.key}/checks/test/",
        {"query": 'errors{flag="{flag}"}', "comparison": "<", "threshold": "0.01"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "pass" in html and "0.002" in html
    assert prometheus.queries == [f'errors{{flag="{rollout.flag.key}"}}']


def test_checks_page__support__may_look_but_not_add(support_client, rollout):
    assert support_client.get(f"/rollouts/{rollout.key}/checks/").status_code == 200
    response = support_client.post(
        f"/rollouts/{rollout.key}/checks/add/",
        {"phase": rollout.phases.first().id, "name": "x", "query": "up", "threshold": "1"},
    )
    assert response.status_code == 403
    assert not PhaseCheck.objects.filter(name="x").exists()


def test_prometheus_source__release_manager_may_not_set_it_admin_may(
    rm_client, rollout, admin_user_role, client
):
    url = f"/rollouts/{rollout.key}/checks/prometheus/"
    assert rm_client.post(url, {"url": "http://evil:9090"}).status_code == 403
    client.force_login(admin_user_role)
    client.post(url, {"url": "http://prom.internal:9090"})
    assert PrometheusSource.objects.get().url == "http://prom.internal:9090"
    response = client.post(url, {"url": "not a url"}, follow=True)
    assert "must be an http(s) URL" in response.content.decode()


def test_api_checks__create_list_patch_delete(rm_client, rollout):
    base = f"/api/v1/rollouts/{rollout.key}/checks"
    body = {"phase_index": 1, "name": "p99", "query": "lat", "comparison": "<", "threshold": 0.3}
    created = rm_client.post(base, body, content_type="application/json")
    assert created.status_code == 201, created.content
    check_id = created.json()["id"]
    listed = rm_client.get(base).json()
    assert [c["name"] for c in listed] == ["Error ratio", "p99"]
    assert listed[1]["phase_index"] == 1
    patched = rm_client.patch(
        f"{base}/{check_id}", {"threshold": 0.5}, content_type="application/json"
    )
    assert patched.json()["threshold"] == 0.5
    assert rm_client.delete(f"{base}/{check_id}").status_code == 204


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"phase_index": 9, "name": "x", "query": "up", "threshold": 1}, 400),
        ({"phase_index": 0, "name": "x", "query": "up", "threshold": "many"}, 400),
        ({"phase_index": 0, "name": "x", "query": "up", "threshold": 1, "comparison": "=="}, 400),
        ({"phase_index": 0, "name": "", "query": "up", "threshold": 1}, 400),
    ],
)
def test_api_checks__bad_input__400(rm_client, rollout, body, status):
    response = rm_client.post(
        f"/api/v1/rollouts/{rollout.key}/checks", body, content_type="application/json"
    )
    assert response.status_code == status


def test_api_checks__support_gets_403_on_write(support_client, rollout):
    response = support_client.post(
        f"/api/v1/rollouts/{rollout.key}/checks",
        {"phase_index": 0, "name": "x", "query": "up", "threshold": 1},
        content_type="application/json",
    )
    assert response.status_code == 403


def test_api_check_test__returns_measurement(rm_client, rollout, prometheus):
    prometheus.values = [3.0]
    response = rm_client.post(
        f"/api/v1/rollouts/{rollout.key}/checks/test",
        {"query": "up", "comparison": ">=", "threshold": 1},
        content_type="application/json",
    )
    assert response.json() == {"status": "pass", "value": 3.0, "query": "up", "detail": "3 is >= 1"}


def test_api_check_results__lists_evaluations(rm_client, rollout, prometheus):
    services.rollout_start(rollout=rollout, actor=None, source="ui")
    prometheus.values = [0.001]
    services.checks_evaluate()
    results = rm_client.get(f"/api/v1/rollouts/{rollout.key}/check-results").json()["results"]
    assert [(r["check"], r["status"], r["value"]) for r in results] == [
        ("Error ratio", "pass", 0.001)
    ]


def test_check_chart__threshold_line_and_gap_for_inconclusive():
    svg = str(
        check_chart_svg(
            name="Errors",
            comparison="<",
            threshold=0.01,
            points=[
                Point(T0, "pass", 0.001),
                Point(T0 + timedelta(minutes=1), "inconclusive", None),
                Point(T0 + timedelta(minutes=2), "fail", 0.2),
            ],
            now=T0 + timedelta(minutes=3),
        )
    )
    assert 'data-threshold="0.01"' in svg
    assert svg.count('data-status="inconclusive"') == 1
    assert 'data-status="fail" data-value="0.2"' in svg
    assert "1 failing, 1 inconclusive" in svg


def test_rollout_page__observed_exposure_next_to_planned_per_phase(rm_client, rollout):
    from flags import usage

    services.rollout_start(rollout=rollout, actor=None, source="ui")
    applied = rollout.phases.get(order=0).applied_at
    usage.usage_add(
        environment_id=rollout.environment_id,
        counts={(rollout.flag.key, "checkout", "i-1", "unleash"): (12, 88, {})},
        bucket=applied,
    )
    html = rm_client.get(f"/rollouts/{rollout.key}/").content.decode()
    assert "Observed exposure" in html
    assert 'data-planned="10"' in html
    assert 'data-observed="12"' in html
