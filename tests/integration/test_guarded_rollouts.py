"""Guarded rollouts against real Prometheus and Alertmanager (Debian packages).

A small exporter serves `http_requests_total`; a real Prometheus scrapes it every second.
1. Checks: the rollout passes phase 1, then the test flips the error rate during phase 2:
   the scheduler (real Celery beat + worker, 1 s tick) holds it on the second failing tick
   (the check trips after 2) and it never moves past phase 2.
2. Alerts: a Prometheus rule on the same exporter fires, a real Alertmanager routes it to
   Rollcall's webhook, and the rollout is held.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.apps import apps

from core.schedules import ensure_periodic_task
from rollouts import services
from rollouts.models import CheckResult, Hold, PrometheusSource, Rollout, RolloutEvent
from tests.conftest import clear_own_cache, require_service
from tests.integration import metrics_stack
from tests.integration.metrics_stack import (
    ALERTMANAGER,
    prom_value,
    start_alertmanager,
    start_prometheus,
)
from tests.rollouts.factories import EnvironmentFactory, make_rollout, phase

ERROR_RATIO = (
    'sum(irate(http_requests_total{code="500",flag="{flag}"}[5s]))'
    ' / sum(irate(http_requests_total{flag="{flag}"}[5s]))'
)
State = Rollout.State
exporter = metrics_stack.exporter  # fixtures
daemons = metrics_stack.daemons


def test_guarded_phase__error_rate_flipped_mid_phase__held_on_the_tripping_tick_never_advances(
    celery_processes, wait_for, exporter, daemons, tmp_path, monkeypatch
):
    clear_own_cache()
    monkeypatch.setenv("ROLLCALL_TICK_SECONDS", "1")
    ensure_periodic_task(
        apps, name="Rollout scheduler sweep", task="rollouts.sweep", every_seconds=1
    )
    prom, prom_url = start_prometheus(tmp_path, targets=[f"127.0.0.1:{exporter.port}"])
    daemons.append(prom)
    env = EnvironmentFactory(key="staging", name="Staging")
    PrometheusSource.objects.create(environment=env, url=prom_url)
    check = {"name": "Error ratio", "query": ERROR_RATIO, "comparison": "<", "threshold": 0.05,
             "failures_to_trip": 2}  # fmt: skip
    rollout = make_rollout(
        environment=env,
        strategy="canary",
        phases=[
            phase("10%", 10, checks=[check]),
            phase("50%", 50, soak=timedelta(seconds=2), checks=[check]),
            phase("100%", 100, soak=timedelta(seconds=6)),
        ],
    )
    exporter.flag = rollout.flag.key
    query = ERROR_RATIO.replace("{flag}", rollout.flag.key)
    wait_for(lambda: prom_value(prom_url, query) == 0.0, timeout=60, what="healthy data")

    celery_processes.worker()
    celery_processes.beat()
    services.rollout_start(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)

    # Phase 1's check passes: the scheduler moves on to phase 2.
    wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).current_phase_index == 1,
        timeout=60,
        what="phase 2",
        logs=celery_processes,
    )
    exporter.error_share = 0.5
    wait_for(lambda: (prom_value(prom_url, query) or 0) > 0.05, timeout=30, what="errors")
    wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).state == State.HELD,
        timeout=60,
        what="the hold",
        logs=celery_processes,
    )
    rollout.refresh_from_db()
    assert rollout.current_phase_index == 1
    hold = Hold.objects.get(rollout=rollout)
    assert hold.kind == Hold.Kind.CHECK
    held = rollout.events.get(kind=RolloutEvent.Kind.HELD)
    assert held.source == RolloutEvent.Source.SCHEDULER
    assert held.data["check"]["query"] == query
    assert held.data["check"]["threshold"] == 0.05
    assert held.data["check"]["value"] > 0.05
    # Held on the tick of the second failing evaluation (it trips after 2): no more than two
    # failing results in phase 2, and nothing evaluated once held.
    phase2 = list(CheckResult.objects.filter(rollout=rollout, phase_index=1).order_by("at", "id"))
    failing = [r for r in phase2 if r.status == "fail"]
    assert len(failing) == 2, [(r.status, r.value) for r in phase2]
    assert phase2[-1].status == "fail"
    assert all(r.at <= held.at for r in phase2)
    # Long past phase 3's due time (6 s soak): still held at phase 2.
    time.sleep(8)
    rollout.refresh_from_db()
    assert (rollout.state, rollout.current_phase_index) == (State.HELD, 1)
    assert not rollout.events.filter(kind=RolloutEvent.Kind.ADVANCED, to_phase_index=2).exists()


def test_alertmanager__prometheus_rule_on_the_exporter_fires__rollout_held(
    transactional_db, live_server, wait_for, exporter, daemons, tmp_path
):
    require_service(ALERTMANAGER.exists(), "the Debian package prometheus-alertmanager is missing")
    env = EnvironmentFactory(key="production", name="Production")
    rollout = make_rollout(
        environment=env,
        phases=[phase("10%", 10), phase("100%", 100, soak=timedelta(hours=1))],
    )
    services.rollout_start(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)
    exporter.flag = rollout.flag.key
    am, am_address = start_alertmanager(
        tmp_path,
        webhook_url=f"{live_server.url}/hooks/alertmanager",
        bearer=rollout.alert_secret,
    )
    daemons.append(am)
    rules = (
        "groups:\n"
        "  - name: checkout\n"
        "    rules:\n"
        "      - alert: CheckoutErrorRate\n"
        f"        expr: {ERROR_RATIO.replace('{flag}', rollout.flag.key)} > 0.05\n"
        "        labels:\n"
        f"          rollout: {rollout.key}\n"
        "        annotations:\n"
        "          summary: checkout answers 500 to more than 5% of requests\n"
    )
    prom, prom_url = start_prometheus(
        tmp_path,
        targets=[f"127.0.0.1:{exporter.port}"],
        rules=rules,
        alertmanager=am_address,
    )
    daemons.append(prom)
    query = ERROR_RATIO.replace("{flag}", rollout.flag.key)
    wait_for(lambda: prom_value(prom_url, query) == 0.0, timeout=60, what="healthy data")
    assert Rollout.objects.get(pk=rollout.pk).state == State.RUNNING

    exporter.error_share = 0.5
    wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).state == State.HELD,
        timeout=90,
        what=f"the alert hold\n{(tmp_path / 'alertmanager.log').read_text()[-3000:]}",
    )
    hold = Hold.objects.get(rollout=rollout)
    assert (hold.kind, hold.alert_name) == (Hold.Kind.ALERT, "CheckoutErrorRate")
    assert "more than 5%" in hold.reason
    assert Rollout.objects.get(pk=rollout.pk).current_phase_index == 0
