"""rollouts.services.scheduler: which rollouts are due, and the sweep one phase per tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import (
    EnvironmentFactory,
    ReleaseFactory,
    make_rollout,
    phase,
    soak_plan,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


@pytest.fixture
def env():
    return EnvironmentFactory(key="staging", name="Staging")


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def started(env, *percentages: int, soak: timedelta = 10 * MIN, **kw) -> Rollout:
    rollout = make_rollout(environment=env, phases=soak_plan(*percentages, soak=soak), **kw)
    return services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)


def test_rollouts_advance_due__workers_were_down__one_phase_per_tick_no_compressed_soak(env):
    rollout = started(env, 10, 20, 50, 100)  # 10-minute soaks
    late = T0 + 60 * MIN
    assert services.rollouts_advance_due(now=late) == 1
    assert services.rollouts_advance_due(now=late + timedelta(seconds=30)) == 0
    assert services.rollouts_advance_due(now=late + 9 * MIN) == 0  # the soak is not compressed
    assert services.rollouts_advance_due(now=late + 10 * MIN) == 1
    applied = list(rollout.phases.order_by("order").values_list("applied_at", flat=True))
    assert applied == [T0, late, late + 10 * MIN, None]
    events = rollout.events.filter(kind=Kind.ADVANCED).order_by("to_phase_index")
    assert [e.due_at for e in events] == [None, T0 + 10 * MIN, late + 10 * MIN]


def test_rollouts_advance_due__at_times_passed_while_down__catch_up_one_per_tick(env):
    rollout = make_rollout(
        environment=env,
        phases=[
            phase("A", 10),
            phase("B", 20, start_rule="at", start_at=T0 + 10 * MIN),
            phase("C", 50, start_rule="at", start_at=T0 + 20 * MIN),
        ],
    )
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    assert services.rollouts_advance_due(now=T0 + 60 * MIN) == 1
    assert reload(rollout).current_phase_index == 1
    assert services.rollouts_advance_due(now=T0 + 60 * MIN + timedelta(seconds=30)) == 1
    assert reload(rollout).state == State.COMPLETED


def test_rollouts_advance_due__at_phase_with_soak__waits_for_both(env):
    rollout = make_rollout(
        environment=env,
        phases=[phase("A", 10), phase("B", 20, start_rule="at", start_at=T0 + MIN, soak=30 * MIN)],
    )
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    assert reload(rollout).next_due_at == T0 + 30 * MIN


def test_rollouts_due__one_query_whatever_the_number_of_rollouts(env, django_assert_num_queries):
    for _ in range(5):
        started(env, 10, 50, release=ReleaseFactory())
    with django_assert_num_queries(1):
        due = services.rollouts_due(now=T0 + 10 * MIN)
    assert len(due) == 5
    assert {index for _, index in due} == {0}


def _statements(captured) -> list[str]:
    """The SQL statements a block ran, without transaction control (savepoints)."""
    return [
        q["sql"] for q in captured if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))
    ]


def test_rollouts_advance_due__queries_grow_by_a_few_per_rollout_policy_and_windows_read_once(
    env,
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.rollouts.factories import freeze, gate_policy

    # A policy (asking approval from 100% on: the 20% and 50% phases are not gated) and a window
    # that is over: both are read, neither blocks.
    gate_policy(env, min_percentage=100)
    freeze("Last year's freeze", starts_at=T0 - 400 * MIN, ends_at=T0 - 300 * MIN)

    def advance(count: int) -> list[str]:
        for _ in range(count):
            started(env, 10, 20, 50, 100, release=ReleaseFactory())
        with CaptureQueriesContext(connection) as ctx:
            moved = services.rollouts_advance_due(now=T0 + 11 * MIN)
        assert moved == count
        return _statements(ctx.captured_queries)

    few = advance(2)
    many = advance(8)

    per_rollout = (len(many) - len(few)) / 6
    fixed = len(few) - 2 * per_rollout
    # Per advanced rollout: lock, phases, the phase, rollout and event writes (with their
    # history) and the flag's state (lock, segments, write, history, environment version),
    # plus the hand-edit guard (read the flag's version first, record the version applied).
    # Per batch: the due selection, the policy, the windows, and clearing past advance failures.
    assert per_rollout <= 14
    assert fixed <= 4
    assert sum(sql.startswith('SELECT "rollouts_approvalpolicy"') for sql in many) == 1
    assert sum(sql.startswith('SELECT "rollouts_freezewindow"') for sql in many) == 1
