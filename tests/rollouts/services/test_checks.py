"""rollouts.services.checks: guarded phases evaluate their Prometheus checks every tick of a
soak; a phase advances only once they pass; a tripped check holds or rolls back by the
rollout's policy; no answer from Prometheus is inconclusive and holds."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import CheckResult, Hold, PhaseCheck, PrometheusSource, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, make_rollout, phase
from tests.rollouts.prometheus_stub import PrometheusStub

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind
ERROR_RATIO = 'sum(rate(http_requests_total{code="500",flag="{flag}",env="{environment}"}[1m]))'


@pytest.fixture
def prometheus():
    stub = PrometheusStub()
    yield stub
    stub.close()


@pytest.fixture
def env(prometheus):
    environment = EnvironmentFactory(key="staging", name="Staging")
    PrometheusSource.objects.create(environment=environment, url=prometheus.url)
    return environment


def tick(*, now):
    """One scheduler sweep as `rollouts.sweep` runs it: checks first, then the due steps."""
    services.checks_evaluate(now=now)
    return services.rollouts_advance_due(now=now)


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def guarded(env, *, trips: int = 1, **kw) -> Rollout:
    check = {"name": "Error ratio", "query": ERROR_RATIO, "comparison": "<", "threshold": 0.01,
             "failures_to_trip": trips}  # fmt: skip
    rollout = make_rollout(
        environment=env,
        phases=[
            phase("10%", 10, checks=[check]),
            phase("50%", 50, soak=10 * MIN, checks=[check]),
            phase("100%", 100, soak=10 * MIN),
        ],
        **kw,
    )
    return services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)


def test_guarded_phase__checks_pass__advances_after_soak_and_query_has_placeholders_filled(
    env, prometheus
):
    rollout = guarded(env)
    prometheus.values = [0.001]
    assert tick(now=T0 + 5 * MIN) == 0  # soak not over
    assert tick(now=T0 + 10 * MIN) == 1
    assert reload(rollout).current_phase_index == 1
    flag = rollout.flag.key
    assert prometheus.queries[0] == (
        f'sum(rate(http_requests_total{{code="500",flag="{flag}",env="staging"}}[1m]))'
    )
    result = CheckResult.objects.filter(rollout=rollout).first()
    assert (result.status, result.value, result.phase_index) == ("pass", 0.001, 0)


def test_guarded_phase__check_fails__holds_with_query_value_and_threshold_in_the_event(
    env, prometheus
):
    rollout = guarded(env)
    prometheus.values = [0.002, 0.25]  # the worst series counts
    assert tick(now=T0 + 10 * MIN) == 0
    rollout = reload(rollout)
    assert rollout.state == State.HELD
    assert rollout.current_phase_index == 0
    hold = rollout.holds.get()
    assert hold.kind == Hold.Kind.CHECK
    assert "0.25 is not < 0.01" in hold.reason
    event = rollout.events.filter(kind=Kind.HELD).get()
    assert event.data["check"]["value"] == 0.25
    assert event.data["check"]["threshold"] == 0.01
    assert event.data["check"]["query"].startswith("sum(rate(http_requests_total{code=")
    # Held: no further evaluations, no advance.
    assert tick(now=T0 + 30 * MIN) == 0
    assert CheckResult.objects.filter(rollout=rollout).count() == 1


def test_guarded_phase__rollback_policy__failing_check_rolls_back(env, prometheus):
    rollout = guarded(env, alert_policy=Rollout.AlertPolicy.ROLLBACK)
    prometheus.values = [0.5]
    tick(now=T0 + MIN)
    rollout = reload(rollout)
    assert rollout.state == State.ROLLED_BACK
    assert rollout.events.get(kind=Kind.ROLLED_BACK).data["check"]["value"] == 0.5


def test_guarded_phase__trips_only_after_consecutive_failures_and_a_pass_resets_the_count(
    env, prometheus
):
    rollout = guarded(env, trips=2)
    prometheus.values = [0.5]
    tick(now=T0 + 1 * MIN)
    assert reload(rollout).state == State.RUNNING
    prometheus.values = [0.0]
    tick(now=T0 + 2 * MIN)
    prometheus.values = [0.5]
    tick(now=T0 + 3 * MIN)
    assert reload(rollout).state == State.RUNNING
    tick(now=T0 + 4 * MIN)
    assert reload(rollout).state == State.HELD


def test_guarded_phase__failing_but_not_tripped__does_not_advance_past_the_soak(env, prometheus):
    rollout = guarded(env, trips=3)
    prometheus.values = [0.5]
    assert tick(now=T0 + 10 * MIN) == 0
    assert reload(rollout).current_phase_index == 0
    prometheus.values = [0.0]
    assert tick(now=T0 + 11 * MIN) == 1


def test_guarded_phase__empty_result__inconclusive_holds_even_with_rollback_policy(env, prometheus):
    rollout = guarded(env, alert_policy=Rollout.AlertPolicy.ROLLBACK)
    prometheus.values = []
    tick(now=T0 + 10 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.HELD
    assert "inconclusive" in rollout.holds.get().reason
    assert "no data" in rollout.holds.get().reason


def test_guarded_phase__prometheus_unreachable__inconclusive_hold_names_the_reason(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    PrometheusSource.objects.filter(environment=env).update(url=f"http://127.0.0.1:{port}")
    rollout = guarded(env)
    tick(now=T0 + 10 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.HELD
    assert "unreachable" in rollout.holds.get().reason
    assert CheckResult.objects.get(rollout=rollout).status == "inconclusive"


def test_guarded_phase__a_pass_from_before_a_hold_does_not_count_for_the_next_phase(
    env, prometheus
):
    rollout = guarded(env)
    prometheus.values = [0.0]
    assert tick(now=T0 + 10 * MIN) == 1
    # Phase 2 (50%) has its own check: a pass is needed after it started.
    prometheus.values = [0.5]
    assert tick(now=T0 + 20 * MIN) == 0
    assert reload(rollout).current_phase_index == 1
    assert reload(rollout).state == State.HELD


def test_check_query_test__returns_the_value_without_storing(env, prometheus):
    prometheus.values = [0.3]
    m = services.check_query_test(
        environment=env, query="up{job='{environment}'}", comparison=">=", threshold=1
    )
    assert (m.status, m.value) == ("fail", 0.3)
    assert prometheus.queries == ["up{job='staging'}"]
    assert not CheckResult.objects.exists()


def test_check_query_test__prometheus_rejects_the_query__inconclusive_with_its_error(
    env, prometheus
):
    prometheus.values = None
    m = services.check_query_test(environment=env, query="sum(", comparison="<", threshold=1)
    assert m.status == "inconclusive"
    assert "parse error" in m.detail


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"query": "  "}, "query"),
        ({"comparison": "=="}, "comparison"),
        ({"threshold": "lots"}, "threshold"),
        ({"threshold": "nan"}, "threshold"),
        ({"failures_to_trip": 0}, "failures_to_trip"),
    ],
)
def test_check_create__bad_input__names_the_field(env, fields, field):
    rollout = make_rollout(environment=env)
    values = {"name": "Errors", "query": "up", "comparison": "<", "threshold": 1, **fields}
    with pytest.raises(ApplicationError) as err:
        services.check_create(phase=rollout.phases.first(), actor=None, **values)
    assert err.value.field == field


def test_check_update__changed_query__must_pass_again(env, prometheus):
    rollout = guarded(env)
    prometheus.values = [0.0]
    services.checks_evaluate(now=T0 + MIN)
    check = PhaseCheck.objects.get(phase__rollout=rollout, phase__order=0)
    assert check.last_status == "pass"
    services.check_update(check=check, actor=None, threshold=0.05)
    check.refresh_from_db()
    assert (check.last_status, check.threshold) == ("", 0.05)
    # Due at T0+10 but the changed check has not passed yet in this tick order: the sweep
    # evaluates first, so it passes and advances.
    assert tick(now=T0 + 10 * MIN) == 1
