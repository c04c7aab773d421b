"""Guarded rollouts in the browser: a rollout page shows its checks with their chart and the
observed exposure next to the plan; a release manager tests a query and adds a check; the
flag page shows SDK usage and the connected applications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from core.demo import DEMO_PASSWORD
from flags import usage
from rollouts import services
from rollouts.models import PhaseCheck, PrometheusSource, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, phase
from tests.rollouts.prometheus_stub import PrometheusStub


@pytest.fixture
def world(transactional_db):
    call_command("load_demo")


@pytest.fixture
def prometheus():
    stub = PrometheusStub()
    yield stub
    stub.close()


def test_rollout_page__checks_chart_and_observed_exposure__flag_page_usage(ui, world, prometheus):
    from django.contrib.auth.models import User

    requester = User.objects.get(username="release")
    env = EnvironmentFactory(key="eu-staging", name="EU staging", order=5)
    PrometheusSource.objects.create(environment=env, url=prometheus.url)
    check = {"name": "Error ratio", "query": 'errors{flag="{flag}"}', "threshold": 0.01,
             "failures_to_trip": 3}  # fmt: skip
    rollout = make_rollout(
        environment=env,
        key="payments-guarded",
        phases=[phase("10%", 10, checks=[check]), phase("100%", 100, soak=timedelta(hours=1))],
        release=ReleaseFactory(name="Payments", version="4.0"),
        actor=requester,
    )
    services.rollout_start(rollout=rollout, actor=requester, source=RolloutEvent.Source.UI)
    start = timezone.now()
    for minute, value in enumerate((0.001, 0.002, 0.2)):
        prometheus.values = [value]
        services.checks_evaluate(now=start + timedelta(minutes=minute))
    usage.usage_add(
        environment_id=env.id,
        counts={(rollout.flag.key, "payments-api", "pod-1", "unleash"): (11, 89, {})},
        bucket=start,
    )
    usage.client_seen(
        environment_id=env.id, app_name="payments-api", instance_id="pod-1", now=start,
        sdk_version="unleash-client-python:5.12.5",
    )  # fmt: skip

    page = ui.page
    ui.login("release", DEMO_PASSWORD)
    ui.visit(f"/rollouts/{rollout.key}/")
    checks = page.get_by_role("region", name="Guarded phases")
    expect(checks).to_contain_text("Error ratio")
    expect(checks).to_contain_text("Fail")
    chart = checks.locator("svg.chart.checks")
    expect(chart).to_have_count(1)
    expect(chart.locator("circle.point")).to_have_count(3)
    expect(chart.locator('[data-threshold="0.01"]')).to_have_count(1)
    observed = page.get_by_role("region", name="Observed exposure")
    expect(observed.locator("svg.chart.observed [data-planned='10']")).to_have_count(1)
    expect(observed.locator("tr[data-phase='0'] td.observed")).to_have_text("11.0%")

    # Manage the checks: test a query now, then add it to the last phase.
    checks.get_by_role("link", name="Manage checks").click()
    page.wait_for_url(f"**/rollouts/{rollout.key}/checks/")
    ui.audit()
    prometheus.values = [0.25]
    page.get_by_label("Phase", exact=True).select_option(label="2. 100%")
    page.get_by_label("Name", exact=True).fill("p99 latency")
    page.get_by_label("PromQL query").fill('latency_p99{env="{environment}"}')
    page.get_by_label("Must be", exact=True).select_option("<")
    page.get_by_label("Threshold", exact=True).fill("0.3")
    page.get_by_role("button", name="Test this query now").click()
    result = page.locator("#check-test-result")
    expect(result).to_contain_text("pass")
    expect(result).to_contain_text('latency_p99{env="eu-staging"}')
    page.get_by_role("button", name="Add the check").click()
    expect(page.get_by_role("cell", name="p99 latency", exact=True)).to_be_visible()
    ui.audit()
    assert PhaseCheck.objects.filter(name="p99 latency", phase__order=1).exists()

    ui.visit(f"/flags/{rollout.flag.key}/")
    section = page.get_by_role("region", name="Usage by SDKs")
    expect(section.locator("svg.chart.usage path.series")).to_have_count(1)
    expect(section.locator("tr[data-app='payments-api']")).to_contain_text(
        "unleash-client-python:5.12.5"
    )
    expect(section.locator("tr[data-usage-env='eu-staging']")).to_contain_text("11.0%")
