"""rollouts.services.holds: holds stop the clock; clearing the last one waits for a person."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import make_rollout, phase
from tests.rollouts.services.helpers import MIN, T0, reload, started

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


def due_ids(now: datetime) -> set[int]:
    return {rid for rid, _ in services.rollouts_due(now=now)}


def tick(rollout: Rollout, now: datetime) -> bool:
    """The scheduler's step for this rollout, as the sweep would take it."""
    current = reload(rollout).current_phase_index
    return services.rollout_advance(
        rollout_id=rollout.pk,
        expected_phase_index=current,
        actor=None,
        source=RolloutEvent.Source.SCHEDULER,
        now=now,
    )


# --------------------------------------------------------------------------------------------
# Holds


def test_hold__manual__clock_stops_and_soak_resumes_where_it_stopped(staging, release_manager):
    rollout = started(staging, 10, 50)
    with pytest.raises(ApplicationError, match="Say why"):
        services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="")
    services.rollout_hold(
        rollout=rollout, actor=release_manager, source=UI, reason="checking logs", now=T0 + 4 * MIN
    )
    rollout = reload(rollout)
    assert rollout.state == State.HELD and rollout.next_due_at is None
    assert rollout.holds.get().created_by == release_manager
    assert tick(rollout, T0 + 60 * MIN) is False
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + 24 * MIN)
    # 4 of 10 minutes soaked before the hold; 6 remain after 20 held minutes.
    assert reload(rollout).next_due_at == T0 + 30 * MIN


def test_hold__scheduled_rollout__held_then_resumed_back_to_scheduled(staging, release_manager):
    plan = [phase("10%", 10, start_rule="at", start_at=T0 + 60 * MIN), phase("all", 100)]
    rollout = make_rollout(environment=staging, phases=plan)
    services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=T0)
    services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="wait")
    assert services.allowed_actions(reload(rollout)) == {"edit_plan", "resume", "cancel", "hold"}
    assert rollout.pk not in due_ids(T0 + 61 * MIN)
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + MIN)
    rollout = reload(rollout)
    assert rollout.state == State.SCHEDULED
    assert rollout.next_due_at == T0 + 60 * MIN


def test_hold_clear__last_hold__stays_paused_for_a_person(staging, release_manager):
    rollout = started(staging, 10, 50)
    services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="a")
    services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="b")
    first, second = reload(rollout).holds.order_by("id")
    services.rollout_hold_clear(hold=first, actor=release_manager, source=UI, now=T0 + MIN)
    assert reload(rollout).state == State.HELD
    services.rollout_hold_clear(hold=second, actor=release_manager, source=UI, now=T0 + MIN)
    rollout = reload(rollout)
    assert rollout.state == State.PAUSED
    assert rollout.paused_at is not None  # the clock is still stopped
    cleared = rollout.events.filter(kind=Kind.HOLD_CLEARED).order_by("id")
    assert [e.data["to_state"] for e in cleared] == [State.HELD, State.PAUSED]
