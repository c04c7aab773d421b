"""Rollouts and manual edits never overwrite each other silently.

A rollback of a rollout that is no longer the latest change to its flag is refused, naming the
newer rollout; a phase about to apply over a flag edited by hand since the previous phase holds
the rollout with the reason instead of overwriting the edit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ConflictError
from flags.models import FlagState
from flags.services import flag_state_update
from rollouts import services
from rollouts.models import Hold, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
SCHED = RolloutEvent.Source.SCHEDULER
State = Rollout.State

HAND_RULES = [{"name": "userWithId", "parameters": {"userIds": "qa-1"}}]


@pytest.fixture
def env():
    return EnvironmentFactory(key="production", name="Production")


def _state(rollout: Rollout) -> FlagState:
    return FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)


def _reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def _old_completed_then_newer_running(env) -> tuple[Rollout, Rollout]:
    old = make_rollout(environment=env, phases=soak_plan(100, soak=MIN))
    services.rollout_start(rollout=old, actor=None, source=UI, now=T0)
    assert _reload(old).state == State.COMPLETED
    newer = make_rollout(
        environment=env, flag=old.flag, release=ReleaseFactory(), phases=soak_plan(20, 100)
    )
    services.rollout_start(rollout=newer, actor=None, source=UI, now=T0 + MIN)
    return old, newer


def test_rollback__older_rollout_while_newer_runs__refused_naming_newer(env):
    old, newer = _old_completed_then_newer_running(env)
    before = _state(newer)
    with pytest.raises(ConflictError, match=rf"Rollout {newer.key} \(running, 20%\).*Roll back"):
        services.rollout_rollback(rollout=old, actor=None, source=UI, now=T0 + 2 * MIN)
    after = _state(newer)
    assert (after.enabled, after.rules, after.version) == (
        before.enabled, before.rules, before.version,
    )  # fmt: skip
    assert _reload(old).state == State.COMPLETED


def test_rollback__newer_rolled_back_first__older_then_restores(env):
    old, newer = _old_completed_then_newer_running(env)
    services.rollout_rollback(rollout=newer, actor=None, source=UI, now=T0 + 2 * MIN)
    services.rollout_rollback(rollout=old, actor=None, source=UI, now=T0 + 3 * MIN)
    state = _state(old)
    assert (state.enabled, state.rules) == (False, [])
    assert _reload(old).state == State.ROLLED_BACK


def test_rollback__freeze_of_older__allowed_flag_untouched(env):
    old = make_rollout(environment=env, phases=soak_plan(10, 100, soak=MIN))
    services.rollout_start(rollout=old, actor=None, source=UI, now=T0)
    services.rollout_pause(rollout=old, actor=None, source=UI, now=T0)
    services.rollout_rollback(
        rollout=old, actor=None, source=UI, now=T0 + MIN, mode=Rollout.RollbackMode.FREEZE
    )
    assert _reload(old).state == State.ROLLED_BACK


def test_scheduler__flag_edited_by_hand_since_phase__held_with_reason_edit_kept(
    env, release_manager
):
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, soak=MIN))
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    flag_state_update(
        flag=rollout.flag, environment=env, actor=release_manager, enabled=True, rules=HAND_RULES
    )
    advanced = services.rollout_advance(
        rollout_id=rollout.pk, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 2 * MIN
    )
    assert advanced is False
    rollout = _reload(rollout)
    assert rollout.state == State.HELD
    assert rollout.current_phase_index == 0
    hold = rollout.holds.get(cleared_at__isnull=True)
    assert hold.kind == Hold.Kind.FLAG_EDITED
    assert rollout.flag.key in hold.reason
    assert release_manager.username in hold.reason
    assert "resume" in hold.reason
    assert _state(rollout).rules[0]["parameters"] == {"userIds": "qa-1"}  # not overwritten


def test_scheduler__hand_edit_accepted_by_resume__next_phase_applies(env):
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, soak=MIN))
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    flag_state_update(
        flag=rollout.flag, environment=env, actor=None, enabled=True, rules=HAND_RULES
    )
    services.rollout_advance(
        rollout_id=rollout.pk, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 2 * MIN
    )
    services.rollout_resume(rollout=rollout, actor=None, source=UI, now=T0 + 3 * MIN)
    advanced = services.rollout_advance(
        rollout_id=rollout.pk, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 5 * MIN
    )
    assert advanced is True
    assert _state(rollout).rules[0]["parameters"]["rollout"] == "50"


def test_scheduler__flag_untouched__advances(env):
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, soak=MIN))
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    assert services.rollout_advance(
        rollout_id=rollout.pk, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 2 * MIN
    )
    assert _reload(rollout).current_phase_index == 1


def test_advance_now__flag_edited_by_hand__refused_edit_kept(env):
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, soak=MIN))
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    flag_state_update(
        flag=rollout.flag, environment=env, actor=None, enabled=True, rules=HAND_RULES
    )
    with pytest.raises(ConflictError, match="was edited since phase 1"):
        services.rollout_advance_now(
            rollout=rollout, actor=None, source=UI, reason="go", now=T0 + 2 * MIN
        )
    assert _state(rollout).rules[0]["parameters"] == {"userIds": "qa-1"}
