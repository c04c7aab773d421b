"""Rollcall's own /metrics: protected by a token or an allowed network; reports rollouts by
state, phase lag, the sweep, deliveries, evaluations and snapshot staleness."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.services import heartbeat_record
from flags import usage
from rollouts import services
from rollouts.models import Rollout
from tests.rollouts.factories import EnvironmentFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db


def _metrics(client: Client, **extra) -> str:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics__outside_allowed_networks_without_token__403(settings):
    settings.ROLLCALL_METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    settings.ROLLCALL_METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403
    bad = Client().get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION="Bearer nope")
    assert bad.status_code == 403
    ok = Client().get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_metrics__rollouts_lag_sweep_deliveries_evaluations():
    env = EnvironmentFactory(key="staging", name="Staging")
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50), key="late-one")
    past = timezone.now() - timedelta(minutes=30)
    services.rollout_start(rollout=rollout, actor=None, source="ui", now=past)
    heartbeat_record(name="rollouts.sweep")
    usage.usage_add(
        environment_id=env.id,
        counts={("f", "app", "", "unleash"): (3, 4, {})},
        bucket=timezone.now(),
    )
    text = _metrics(Client())
    assert 'rollcall_rollouts{state="running"} 1.0' in text
    assert 'rollcall_rollouts{state="draft"} 0.0' in text
    prefix = 'rollcall_rollout_phase_lag_seconds{environment="staging",rollout="late-one"}'
    lag = next(line for line in text.splitlines() if line.startswith(prefix))
    assert 1100 < float(lag.split()[-1]) < 1300  # due 10 min after a start 30 min ago
    assert "rollcall_scheduler_last_run_timestamp_seconds" in text
    assert "rollcall_scheduler_sweep_duration_seconds" in text
    assert 'rollcall_deliveries{state="failed"} 0.0' in text
    assert "rollcall_deliveries_dead 0.0" in text
    assert 'rollcall_flag_evaluations_total{environment="staging",source="unleash"} 7.0' in text
    assert Rollout.objects.get(pk=rollout.pk).state == "running"
