"""When phases are due, computed from stored facts only (pure functions, no database writes).

Rules:
- Phase 0 is applied when the rollout starts (a person, or the scheduler at phase 0's `at`
  time for a scheduled rollout).
- A later phase with `after_soak` may start `soak` after the previous phase was *actually*
  applied, so soaks are never compressed when workers were down: the overdue phase advances
  on the next tick and the next soak counts from then.
- A phase with `at` may start at that date-time, and not before its soak (if it has one)
  after the previous phase was applied.
- The soak clock stops while the rollout is paused or held (`Rollout.paused_for`).
- A manual gate makes the phase wait for a person once it is due; the scheduler skips it.
- Freeze and allow windows (`rollouts.windows`) move a due time to the next allowed moment:
  `next_due_at(..., windows=...)` is when the scheduler may act, not only when the soak ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rollouts.windows import WindowSpec, next_allowed

if TYPE_CHECKING:
    from rollouts.models import Phase, Rollout, RolloutEvent

ZERO = timedelta(0)

# Literal values of the model choices (keeps this module importable without the app registry).
AT = "at"
MANUAL = "manual"
DRAFT, SCHEDULED, RUNNING, PAUSED, HELD = "draft", "scheduled", "running", "paused", "held"
COMPLETED, ROLLED_BACK, CANCELLED = "completed", "rolled_back", "cancelled"
STOPPED = (PAUSED, HELD)
FINAL = (COMPLETED, ROLLED_BACK, CANCELLED)


def _paused_for(rollout: Rollout, now: datetime | None = None) -> timedelta:
    """Time the current phase's soak clock has been stopped (including an open pause)."""
    total = rollout.paused_for or ZERO
    if now is not None and rollout.state in STOPPED and rollout.paused_at is not None:
        total += max(now - rollout.paused_at, ZERO)
    return total


def phase_due_at(
    rollout: Rollout,
    phase: Phase,
    previous_applied_at: datetime | None,
    *,
    stopped_for: timedelta | None = None,
) -> datetime | None:
    """The earliest moment `phase` may start, given when the previous phase was applied.

    `stopped_for` is how long the soak clock was stopped during the previous phase; it
    defaults to the rollout's pause total when `phase` is the rollout's next phase.
    None means "not known from the facts" (phase 0 without an `at` time, or a previous phase
    that has no start yet).
    """
    if phase.order == 0 or previous_applied_at is None:
        if phase.start_rule == AT and phase.order == 0:
            return phase.start_at
        return None
    if stopped_for is None:
        stopped_for = (
            (rollout.paused_for or ZERO) if phase.order == rollout.current_phase_index + 1 else ZERO
        )
    after_soak = previous_applied_at + (phase.soak or ZERO) + stopped_for
    if phase.start_rule == AT and phase.start_at is not None:
        return max(phase.start_at, after_soak)
    return after_soak


def _allowed(at: datetime | None, windows: Sequence[WindowSpec]) -> datetime | None:
    return next_allowed(at, windows) if at is not None and windows else at


def next_due_at(
    rollout: Rollout, phases: Sequence[Phase], *, windows: Sequence[WindowSpec] = ()
) -> datetime | None:
    """When the rollout's next step is due, from stored facts (None: nothing is due).

    Scheduled: phase 0's `at` time (the start). Running: the next phase's due time (also for
    a manual gate, where it means "a person may continue from then"). Otherwise None: paused,
    held, draft and final rollouts never become due on their own. With `windows`, the due
    time moves to the next allowed moment (None if there is none within the horizon).
    """
    if rollout.state == SCHEDULED:
        return _allowed(phase_due_at(rollout, phases[0], None), windows) if phases else None
    if rollout.state != RUNNING:
        return None
    index = rollout.current_phase_index
    if index < 0 or index + 1 >= len(phases):
        return None
    previous = phases[index].applied_at or rollout.phase_started_at
    return _allowed(phase_due_at(rollout, phases[index + 1], previous), windows)


@dataclass(frozen=True)
class PhaseTimes:
    phase: Phase
    planned_start: datetime | None  # None: waits for a person, or never (final rollouts)
    actual_start: datetime | None
    end: datetime | None
    is_current: bool
    state: str  # "done" | "current" | "upcoming"

    @property
    def waits_for_person(self) -> bool:
        return self.state == "upcoming" and self.phase.gate == MANUAL


def projected_timeline(
    rollout: Rollout,
    phases: Sequence[Phase],
    now: datetime,
    *,
    windows: Sequence[WindowSpec] = (),
) -> list[PhaseTimes]:
    """Each phase's planned and actual start, projected from now for the phases to come.

    Overdue automatic phases are projected at `now` (the next tick); a manual gate has no
    planned start (it waits for a person) and neither have the phases after it, unless they
    start at a fixed `at` time. With `windows`, projected starts wait for the next allowed
    moment.
    """
    current = rollout.current_phase_index
    final = rollout.state in FINAL
    starts: list[datetime | None] = []
    planned: list[datetime | None] = []
    for i, phase in enumerate(phases):
        if phase.applied_at is not None and i <= current:
            previous = starts[i - 1] if i else None
            plan = (
                phase_due_at(rollout, phase, previous, stopped_for=ZERO)
                if i
                else (phase.start_at if phase.start_rule == AT else phase.applied_at)
            )
            starts.append(phase.applied_at)
            planned.append(plan)
            continue
        if final:
            starts.append(None)
            planned.append(None)
            continue
        if i == 0:
            plan = phase.start_at if phase.start_rule == AT else None
            if plan is not None:
                plan = _allowed(plan, windows)
            elif rollout.state == DRAFT:
                plan = now  # "if started now"
        else:
            previous = starts[i - 1]
            stopped = _paused_for(rollout, now) if i == current + 1 else ZERO
            plan = phase_due_at(rollout, phase, previous, stopped_for=stopped)
            if plan is not None and i == current + 1 and plan < now:
                plan = now  # overdue: the next tick
            plan = _allowed(plan, windows)
            if phase.gate == MANUAL:
                plan = None
        starts.append(plan)
        planned.append(plan)
    result: list[PhaseTimes] = []
    for i, phase in enumerate(phases):
        applied = phase.applied_at is not None and i <= current
        is_current = i == current and not final
        if applied and (i < current or final):
            state = "done"
        elif applied:
            state = "current"
        else:
            state = "upcoming"
        end = starts[i + 1] if i + 1 < len(phases) else None
        if final and i == current and rollout.state != COMPLETED:
            end = rollout.finished_at  # rolled back or cancelled: its exposure ended then
        result.append(
            PhaseTimes(
                phase=phase,
                planned_start=planned[i],
                actual_start=phase.applied_at if applied else None,
                end=end,
                is_current=is_current,
                state=state,
            )
        )
    return result


def projected_end(
    rollout: Rollout,
    phases: Sequence[Phase],
    now: datetime,
    *,
    windows: Sequence[WindowSpec] = (),
) -> datetime | None:
    """When the last phase starts (the rollout completes), or None if a person decides."""
    if rollout.state == COMPLETED:
        return rollout.finished_at
    if rollout.state in FINAL or not phases:
        return None
    last = projected_timeline(rollout, phases, now, windows=windows)[-1]
    return last.actual_start or last.planned_start


def _runs_again(event: RolloutEvent) -> bool:
    """A cleared hold restarts the clock only when the rollout runs again (auto-resume); an
    older event without `to_state` counts as running again."""
    data = getattr(event, "data", None) or {}
    return data.get("to_state", RUNNING) in (RUNNING, SCHEDULED)


@dataclass(frozen=True)
class ExposureSteps:
    planned: list[tuple[datetime, int]] = field(default_factory=list)
    actual: list[tuple[datetime, int]] = field(default_factory=list)
    # Paused or held intervals; end None while still stopped.
    holds: list[tuple[datetime, datetime | None]] = field(default_factory=list)


def exposure_steps(
    rollout: Rollout, phases: Sequence[Phase], events: Iterable[RolloutEvent]
) -> ExposureSteps:
    """Planned and actual exposure step series for charts, plus the stopped intervals.

    Planned: the plan as intended from the moment the rollout started (or phase 0's `at`
    time), each phase after its soak, no delays. Actual: what the event log says happened.
    A segment-only phase counts as 0% (its audience is not a share of users).
    """
    planned: list[tuple[datetime, int]] = []
    anchor = rollout.started_at or (
        phases[0].start_at if phases and phases[0].start_rule == AT else None
    )
    if anchor is not None and phases:
        when: datetime | None = anchor
        for i, phase in enumerate(phases):
            if i:
                when = phase_due_at(rollout, phase, when, stopped_for=ZERO)
            if when is None:
                break
            planned.append((when, phase.percentage or 0))

    actual: list[tuple[datetime, int]] = []
    holds: list[tuple[datetime, datetime | None]] = []
    open_hold: datetime | None = None
    for event in events:
        kind = event.kind
        if kind == "advanced":
            actual.append((event.at, event.to_percentage or 0))
        elif kind == "rolled_back":
            # Restored: 0%. Frozen at the current exposure: the event names it.
            actual.append((event.at, event.to_percentage or 0))
        if kind in ("paused", "held") and open_hold is None:
            open_hold = event.at
        elif open_hold is not None and (
            kind == "resumed" or kind in FINAL or (kind == "hold_cleared" and _runs_again(event))
        ):
            holds.append((open_hold, event.at))
            open_hold = None
    if open_hold is not None:
        holds.append((open_hold, None))
    return ExposureSteps(planned=planned, actual=actual, holds=holds)
