"""rollouts.scheduling: pure functions over unsaved model instances (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollouts.models import Phase, Rollout, RolloutEvent
from rollouts.scheduling import (
    exposure_steps,
    next_due_at,
    phase_due_at,
    projected_end,
    projected_timeline,
)

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def make(state="running", current=0, **kw) -> Rollout:
    return Rollout(key="r", strategy="canary", state=state, current_phase_index=current, **kw)


def ph(order, pct, *, soak=None, rule="after_soak", at=None, gate="automatic", applied=None):
    return Phase(
        order=order,
        name=f"P{order}",
        percentage=pct,
        soak=soak,
        start_rule=rule,
        start_at=at,
        gate=gate,
        applied_at=applied,
    )


def test_phase_due_at__after_soak__previous_start_plus_soak():
    rollout = make()
    assert phase_due_at(rollout, ph(1, 10, soak=5 * MIN), T0) == T0 + 5 * MIN


def test_phase_due_at__no_soak__due_when_previous_applied():
    assert phase_due_at(make(), ph(1, 10), T0) == T0


def test_phase_due_at__at_time__that_time_or_soak_whichever_is_later():
    rollout = make()
    assert phase_due_at(rollout, ph(1, 10, rule="at", at=T0 + 30 * MIN), T0) == T0 + 30 * MIN
    later_soak = ph(1, 10, rule="at", at=T0 + 30 * MIN, soak=60 * MIN)
    assert phase_due_at(rollout, later_soak, T0) == T0 + 60 * MIN


def test_phase_due_at__first_phase__its_at_time_or_unknown():
    rollout = make(state="scheduled", current=-1)
    assert phase_due_at(rollout, ph(0, 5, rule="at", at=T0), None) == T0
    assert phase_due_at(rollout, ph(0, 5), None) is None


def test_phase_due_at__next_phase_of_a_paused_rollout__stopped_time_added():
    rollout = make(paused_for=7 * MIN)
    assert phase_due_at(rollout, ph(1, 10, soak=5 * MIN), T0) == T0 + 12 * MIN
    # A later phase is not shifted by the current phase's pause.
    assert phase_due_at(rollout, ph(2, 10, soak=5 * MIN), T0) == T0 + 5 * MIN


def test_next_due_at__running__from_when_the_current_phase_really_applied():
    phases = [ph(0, 5, applied=T0 + 3 * MIN), ph(1, 50, soak=10 * MIN)]
    assert next_due_at(make(), phases) == T0 + 13 * MIN


@pytest.mark.parametrize("state", ["draft", "paused", "held", "completed", "rolled_back"])
def test_next_due_at__not_running__none(state):
    phases = [ph(0, 5, applied=T0), ph(1, 50, soak=10 * MIN)]
    assert next_due_at(make(state=state), phases) is None


def test_next_due_at__at_last_phase__none():
    phases = [ph(0, 5, applied=T0), ph(1, 50, soak=10 * MIN, applied=T0 + 10 * MIN)]
    assert next_due_at(make(current=1), phases) is None


def test_next_due_at__scheduled__first_phase_time():
    phases = [ph(0, 5, rule="at", at=T0 + 60 * MIN), ph(1, 50, soak=10 * MIN)]
    assert next_due_at(make(state="scheduled", current=-1), phases) == T0 + 60 * MIN


def test_projected_timeline__running__done_current_and_projected_upcoming():
    phases = [
        ph(0, 5, applied=T0),
        ph(1, 25, soak=10 * MIN, applied=T0 + 12 * MIN),
        ph(2, 50, soak=10 * MIN),
        ph(3, 100, soak=60 * MIN),
    ]
    now = T0 + 15 * MIN
    times = projected_timeline(make(current=1, started_at=T0), phases, now)
    assert [t.state for t in times] == ["done", "current", "upcoming", "upcoming"]
    assert [t.is_current for t in times] == [False, True, False, False]
    assert [t.actual_start for t in times] == [T0, T0 + 12 * MIN, None, None]
    assert times[1].planned_start == T0 + 10 * MIN  # as due from the real previous start
    assert times[2].planned_start == T0 + 22 * MIN
    assert times[3].planned_start == T0 + 82 * MIN
    assert [t.end for t in times] == [T0 + 12 * MIN, T0 + 22 * MIN, T0 + 82 * MIN, None]
    assert projected_end(make(current=1), phases, now) == T0 + 82 * MIN


def test_projected_timeline__overdue_next_phase__projected_at_now():
    phases = [ph(0, 5, applied=T0), ph(1, 25, soak=10 * MIN), ph(2, 50, soak=10 * MIN)]
    now = T0 + 60 * MIN
    times = projected_timeline(make(), phases, now)
    assert times[1].planned_start == now
    assert times[2].planned_start == now + 10 * MIN  # soaks are never compressed


def test_projected_timeline__manual_gate__waits_for_a_person_and_so_do_later_phases():
    phases = [
        ph(0, 5, applied=T0),
        ph(1, 25, soak=10 * MIN, gate="manual"),
        ph(2, 50, soak=10 * MIN),
    ]
    times = projected_timeline(make(), phases, T0 + MIN)
    assert times[1].planned_start is None
    assert times[1].waits_for_person
    assert times[2].planned_start is None
    assert projected_end(make(), phases, T0 + MIN) is None


def test_projected_timeline__paused__remaining_soak_counts_from_now():
    rollout = make(state="paused", paused_at=T0 + 4 * MIN)
    phases = [ph(0, 5, applied=T0), ph(1, 25, soak=10 * MIN)]
    times = projected_timeline(rollout, phases, T0 + 20 * MIN)
    assert times[1].planned_start == T0 + 26 * MIN  # 6 minutes were left at the pause


def test_projected_timeline__draft__as_if_started_now():
    phases = [ph(0, 5), ph(1, 25, soak=10 * MIN)]
    times = projected_timeline(make(state="draft", current=-1), phases, T0)
    assert [t.planned_start for t in times] == [T0, T0 + 10 * MIN]
    assert [t.state for t in times] == ["upcoming", "upcoming"]


def test_projected_timeline__rolled_back__current_phase_ends_then_rest_never():
    rollout = make(state="rolled_back", finished_at=T0 + 5 * MIN)
    phases = [ph(0, 5, applied=T0), ph(1, 25, soak=10 * MIN)]
    times = projected_timeline(rollout, phases, T0 + 60 * MIN)
    assert times[0].state == "done"
    assert times[0].end == T0 + 5 * MIN
    assert times[1].planned_start is None
    assert projected_end(rollout, phases, T0) is None


def ev(kind, at, pct=None):
    return RolloutEvent(kind=kind, at=at, source="scheduler", to_percentage=pct)


def test_exposure_steps__planned_vs_actual_with_holds():
    rollout = make(current=1, started_at=T0)
    phases = [
        ph(0, 5, applied=T0),
        ph(1, 25, soak=10 * MIN, applied=T0 + 20 * MIN),
        ph(2, 100, soak=10 * MIN),
    ]
    events = [
        ev("started", T0),
        ev("advanced", T0, 5),
        ev("paused", T0 + 5 * MIN),
        ev("resumed", T0 + 15 * MIN),
        ev("advanced", T0 + 20 * MIN, 25),
        ev("held", T0 + 25 * MIN),
    ]
    steps = exposure_steps(rollout, phases, events)
    assert steps.planned == [(T0, 5), (T0 + 10 * MIN, 25), (T0 + 20 * MIN, 100)]
    assert steps.actual == [(T0, 5), (T0 + 20 * MIN, 25)]
    assert steps.holds == [(T0 + 5 * MIN, T0 + 15 * MIN), (T0 + 25 * MIN, None)]


def test_exposure_steps__rolled_back__drops_to_zero_and_closes_hold():
    rollout = make(state="rolled_back", started_at=T0)
    phases = [ph(0, 10, applied=T0), ph(1, 50, soak=MIN)]
    events = [
        ev("advanced", T0, 10),
        ev("paused", T0 + MIN),
        ev("rolled_back", T0 + 2 * MIN, 0),
    ]
    steps = exposure_steps(rollout, phases, events)
    assert steps.actual == [(T0, 10), (T0 + 2 * MIN, 0)]
    assert steps.holds == [(T0 + MIN, T0 + 2 * MIN)]


def test_exposure_steps__draft_without_start__no_planned_series():
    steps = exposure_steps(make(state="draft", current=-1), [ph(0, 5), ph(1, 10)], [])
    assert steps.planned == []
    assert steps.actual == []
