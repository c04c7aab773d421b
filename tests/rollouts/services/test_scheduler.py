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


def _statements(sqls: list[str]) -> list[str]:
    """The SQL statements a block ran, without transaction control (savepoints)."""
    return [sql for sql in sqls if not sql.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]


def test_rollouts_advance_due__ten_statements_per_rollout_policy_windows_phases_read_once(env):
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
        return [q["sql"] for q in ctx.captured_queries]

    few = advance(2)
    many = advance(8)

    per_rollout = (len(_statements(many)) - len(_statements(few))) / 6
    fixed = len(_statements(few)) - 2 * per_rollout
    # Per advanced rollout (10): lock the rollout; lock the flag's state (the hand-edit guard
    # compares its version, the write follows); write the phase, the event, the flag's state,
    # the environment's version and the rollout (with the flag version it leaves behind), and
    # the history rows of the phase, the state and the rollout.
    # Per batch: the due selection, the policy, the windows, the batch's phases, and clearing
    # past advance failures.
    assert per_rollout <= 10
    assert fixed <= 5
    assert sum(sql.startswith('SELECT "rollouts_approvalpolicy"') for sql in many) == 1
    assert sum(sql.startswith('SELECT "rollouts_freezewindow"') for sql in many) == 1
    assert sum(sql.startswith('SELECT "rollouts_phase"') for sql in many) == 1
    assert not any(sql.startswith('SELECT "flags_segment"') for sql in many)
    # No savepoint but each step's own transaction (a savepoint inside the test's).
    assert sum(sql.startswith("SAVEPOINT") for sql in many) == 8


def _flag_percentage(rollout: Rollout) -> str:
    from flags.models import FlagState

    state = FlagState.objects.get(flag_id=rollout.flag_id, environment_id=rollout.environment_id)
    return state.rules[0]["parameters"]["rollout"]


def test_rollouts_advance_steps__plan_changed_after_the_batch_read_its_phases__new_plan_applies(
    env,
):
    from rollouts.services.lifecycle import rollout_advance
    from rollouts.services.sweep import SweepCache

    first = started(env, 10, 20, 100, release=ReleaseFactory())
    second = started(env, 10, 20, 100, release=ReleaseFactory())
    cache = SweepCache(rollout_ids=[first.id, second.id])
    due = T0 + 11 * MIN
    step = {"expected_phase_index": 0, "actor": None, "source": RolloutEvent.Source.SCHEDULER}
    # The first step reads the batch's phases, the second rollout's among them.
    assert rollout_advance(rollout_id=first.id, now=due, cache=cache, **step)
    # Then its plan changes, before its own step locks it.
    services.rollout_plan_update(
        rollout=second, phases=soak_plan(10, 30, 100), actor=None, source=UI, now=due
    )
    assert rollout_advance(rollout_id=second.id, now=due, cache=cache, **step)
    assert _flag_percentage(first) == "20"
    assert _flag_percentage(second) == "30"  # the plan as it is under the lock, not the read
    event = reload(second).events.filter(kind=Kind.ADVANCED).latest("id")
    assert (event.to_phase_index, event.to_percentage) == (1, 30)


def test_rollouts_advance_due__applied_flag_version_saved_with_the_rollout_and_its_history(env):
    rollout = started(env, 10, 20, 100)
    assert services.rollouts_advance_due(now=T0 + 11 * MIN) == 1
    rollout = reload(rollout)
    from flags.models import FlagState

    state = FlagState.objects.get(flag_id=rollout.flag_id, environment_id=rollout.environment_id)
    assert rollout.applied_flag_version == state.version
    assert rollout.history.latest("history_date").applied_flag_version == state.version
