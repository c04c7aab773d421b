"""The rollout state machine: schedule, start, advance (the scheduler's step and a person's
"advance now"), pause, resume, complete, cancel and roll back, plus the final-state
bookkeeping they share and what each state allows.

Each transition locks the rollout row, checks the state it expects, changes the flag through
`flags.services` and writes a `RolloutEvent`, all in one transaction. The scheduler path
(`rollout_advance`) additionally skips rows another worker holds and checks the expected
phase, so duplicate ticks, retries and several workers never advance a phase twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef

from core.exceptions import ApplicationError, ConflictError
from flags.models import FlagState
from flags.services import flag_state_apply, lock_state, through_rollout
from rollouts import scheduling, strategies
from rollouts import windows as windows_mod
from rollouts.models import (
    Approval,
    ApprovalPolicy,
    ChecklistItem,
    Hold,
    Phase,
    Rollout,
    RolloutEvent,
)
from rollouts.services.common import (
    LIVE_STATES,
    STOPPED_STATES,
    _close_pause,
    _illegal,
    _lock,
    _now,
    _percentage,
    _phases,
    _save,
    _source,
)
from rollouts.services.events import _record
from rollouts.services.gates import (
    _check_gates,
    _refresh_gates,
    approval_rule,
    environment_policy,
    gate_status,
    promotion_blocker,
)
from rollouts.services.holds import _active_holds, _clear_holds, _hold
from rollouts.services.sweep import SweepCache
from rollouts.services.windows import _check_window, _due
from rollouts.windows import WindowSpec

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind


ACTIONS = frozenset(
    {"edit_plan", "schedule", "start", "pause", "resume", "advance_now", "complete", "cancel",
     "rollback", "hold"}
)  # fmt: skip


# Strategies whose rollback is always an instant switch back (no "freeze at current exposure").
INSTANT_ROLLBACK = (Rollout.Strategy.CANARY, Rollout.Strategy.BLUE_GREEN)


def _apply_exposure(
    rollout: Rollout, phase: Phase, actor: AbstractBaseUser | None, state: FlagState
) -> FlagState:
    """Set the flag's `state` (locked by the caller's transaction) to the phase's exposure."""
    rules = strategies.exposure_rules(
        strategy_key=rollout.strategy,
        flag_key=rollout.flag.key,
        percentage=phase.percentage,
        segment_id=phase.segment_id,
        title=f"Rollout {rollout.key}: {phase.name}"[:200],
    )
    # The rules name no segment but the phase's: it exists, as the phase (read in this
    # transaction) refers to it and a segment in use by a phase cannot be deleted.
    segment_ids = {phase.segment_id} if phase.segment_id is not None else set()
    with through_rollout():  # the phase's gates applied
        return flag_state_apply(
            state=state,
            flag=rollout.flag,
            environment=rollout.environment,
            actor=actor,
            enabled=True,
            rules=rules,
            segment_ids=segment_ids,
        )


def _check_no_other_live(rollout: Rollout) -> None:
    other = (
        Rollout.objects.filter(
            flag_id=rollout.flag_id, environment_id=rollout.environment_id, state__in=LIVE_STATES
        )
        .exclude(pk=rollout.pk)
        .values_list("key", flat=True)
        .first()
    )
    if other:
        raise ApplicationError(
            f"Rollout {other} already drives {rollout.flag.key} in {rollout.environment.name}; "
            "finish, roll back or cancel it first.",
            field="flag",
        )


def _remember_flag_version(rollout: Rollout, version: int) -> None:
    """The flag version this rollout left behind (compared before its next phase)."""
    rollout.applied_flag_version = version
    Rollout.objects.filter(pk=rollout.pk).update(applied_flag_version=version)


def _current_flag_state(rollout: Rollout) -> FlagState | None:
    return FlagState.objects.filter(
        flag_id=rollout.flag_id, environment_id=rollout.environment_id
    ).first()


def _lock_flag_state(rollout: Rollout) -> FlagState:
    """Lock the flag's state in the rollout's environment (after the rollout row: the order
    every rollout transition takes), to compare its version and then write it."""
    return lock_state(rollout.flag, rollout.environment)


def _hand_edit(rollout: Rollout, phases: Sequence[Phase], state: FlagState) -> str | None:
    """Why the next phase must not apply: the flag changed since this rollout last set it.

    `state` is the flag's state, locked by the caller until it writes the next phase."""
    if rollout.applied_flag_version is None or rollout.current_phase_index < 0:
        return None
    if state.version == rollout.applied_flag_version:
        return None
    last = state.history.order_by("-history_date").select_related("history_user").first()
    who = f" by {last.history_user}" if last is not None and last.history_user else ""
    done = phases[rollout.current_phase_index].name
    return (
        f"{rollout.flag.key} in {rollout.environment.name} was edited{who} since phase "
        f"{rollout.current_phase_index + 1} ({done}) applied (flag version "
        f"{rollout.applied_flag_version} -> {state.version}); the next phase would overwrite "
        "the edit. Review the flag, then resume to apply the next phase over it, or roll back."
    )


def _check_schedulable(rollout: Rollout, phases: Sequence[Phase], now: datetime) -> None:
    first = phases[0]
    if first.start_rule != Phase.StartRule.AT or first.start_at is None:
        raise ApplicationError(
            f"To schedule rollout {rollout.key}, give phase 1 ({first.name}) a start date and "
            "time; or start it now.",
            field="phases.0.start_at",
        )
    if first.start_at <= now:
        raise ApplicationError(
            f"Phase 1 ({first.name}) starts in the past; pick a later time or start now.",
            field="phases.0.start_at",
        )


@transaction.atomic
def rollout_schedule(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    start_at: datetime | None = None,
) -> Rollout:
    """draft -> scheduled: the scheduler starts it at phase 1's `at` time.

    `start_at` first gives phase 1 that start time (e.g. "now + the longest notice lead time",
    offered when starting now would send a briefing too late).
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.DRAFT:
        raise _illegal(rollout, "schedule")
    phases = _phases(rollout)
    if not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    if start_at is not None and start_at > now:
        phases[0].start_rule = Phase.StartRule.AT
        phases[0].start_at = start_at
        phases[0].save(update_fields=["start_rule", "start_at", "updated_at"])
    _check_schedulable(rollout, phases, now)
    _check_no_other_live(rollout)
    _enter_scheduled(rollout, phases, actor=actor, source=source, now=now)
    logger.info(
        "rollout.scheduled rollout_id=%s start=%s",
        rollout.id, rollout.next_due_at.isoformat() if rollout.next_due_at else "-",
    )  # fmt: skip
    return rollout


@transaction.atomic
def rollout_start_when_approved(
    *, rollout: Rollout, actor: AbstractBaseUser | None, source: str, now: datetime | None = None
) -> Rollout:
    """draft -> scheduled to start now: the scheduler starts it as soon as phase 1's gates
    (approval, checklist) are satisfied, so nobody has to come back to press Start.

    Phase 1 gets the start time `now`; its approval is requested if it needs one.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.DRAFT:
        raise _illegal(rollout, "schedule")
    phases = _phases(rollout)
    if not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    _check_no_other_live(rollout)
    first = phases[0]
    first.start_rule = Phase.StartRule.AT
    first.start_at = now
    first.save(update_fields=["start_rule", "start_at", "updated_at"])
    _enter_scheduled(
        rollout, phases, actor=actor, source=source, now=now,
        reason="Starts as soon as phase 1 is approved.", data={"when_approved": True},
    )  # fmt: skip
    logger.info("rollout.scheduled_when_approved rollout_id=%s", rollout.id)
    return rollout


def _enter_scheduled(
    rollout: Rollout,
    phases: Sequence[Phase],
    *,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    """draft -> scheduled: the due time, the live-state save, the event and the gates."""
    rollout.state = State.SCHEDULED
    rollout.next_due_at = _due(rollout, phases)
    _save_live(rollout, actor, ["state", "next_due_at"])
    _record(
        rollout,
        kind=Kind.SCHEDULED,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        due_at=rollout.next_due_at,
        to_phase=0,
        to_percentage=phases[0].percentage,
        data=data,
    )
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)


def _save_live(rollout: Rollout, actor: AbstractBaseUser | None, fields: list[str]) -> None:
    """Save a rollout entering a live state; the database allows one per flag and environment."""
    try:
        with transaction.atomic():
            _save(rollout, actor, fields)
    except IntegrityError:
        _check_no_other_live(rollout)
        raise


def _advance_to(
    rollout: Rollout,
    phases: list[Phase],
    index: int,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    due_at: datetime | None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    windows: Sequence[WindowSpec] | None = None,
    policy: ApprovalPolicy | bool | None = False,
    no_pending: bool = False,
    state: FlagState | None = None,
) -> None:
    """Apply phase `index`: flag rules, phase and rollout facts, events. Caller holds the lock.

    `windows`, `policy` and `no_pending` are what the scheduler already read (see
    `rollout_advance`), `state` the flag's state the caller locked (`_lock_flag_state`); by
    default they are read here.
    """
    if state is None:
        state = _lock_flag_state(rollout)
    previous = rollout.current_phase_index
    phase = phases[index]
    phase.applied_at = now
    phase.save(update_fields=["applied_at", "updated_at"])
    rollout.current_phase_index = index
    rollout.phase_started_at = now
    rollout.paused_for = timedelta(0)
    rollout.paused_at = None
    last = index == len(phases) - 1
    if last:
        rollout.state = State.COMPLETED
        rollout.finished_at = now
    rollout.next_due_at = _due(rollout, phases, windows)
    lateness = (now - due_at).total_seconds() if due_at is not None else None
    _record(
        rollout,
        kind=Kind.ADVANCED,
        source=source,
        actor=actor,
        at=now,
        due_at=due_at,
        from_phase=previous if previous >= 0 else None,
        to_phase=index,
        from_percentage=_percentage(phases, previous),
        to_percentage=phase.percentage,
        reason=reason,
        data={"phase": phase.name, "segment": phase.segment_id, **(data or {})},
    )
    if last:
        _record(
            rollout,
            kind=Kind.COMPLETED,
            source=source,
            actor=actor,
            at=now,
            to_phase=index,
            to_percentage=phase.percentage,
        )
    _refresh_gates(
        rollout, phases, now=now, actor=actor, source=source, policy=policy, no_pending=no_pending
    )
    # Near the end, so the environment row (bumped by flags) is locked for a short time; the
    # rollout is saved after it with the flag version it leaves behind (compared before its
    # next phase), in the same statement as its other facts.
    state = _apply_exposure(rollout, phase, actor, state)
    rollout.applied_flag_version = state.version
    _save(
        rollout,
        actor,
        ["state", "current_phase_index", "phase_started_at", "paused_for", "paused_at",
         "next_due_at", "finished_at", "applied_flag_version"],
    )  # fmt: skip
    logger.info(
        "rollout.advanced rollout_id=%s key=%s phase=%s percentage=%s source=%s lateness_s=%s "
        "flag_version=%s",
        rollout.id, rollout.key, index, phase.percentage, source,
        f"{lateness:.3f}" if lateness is not None else "-", state.version,
    )  # fmt: skip
    if last:
        logger.info("rollout.completed rollout_id=%s key=%s", rollout.id, rollout.key)


def _start(
    rollout: Rollout,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    due_at: datetime | None,
    windows: Sequence[WindowSpec] | None = None,
    policy: ApprovalPolicy | bool | None = False,
    phases: list[Phase] | None = None,
) -> None:
    if phases is None:
        phases = _phases(rollout)
    if not phases:
        raise ApplicationError("A rollout plan needs at least one phase.", field="phases")
    _check_no_other_live(rollout)
    if policy is False:
        policy = environment_policy(rollout.environment_id)
    assert policy is None or isinstance(policy, ApprovalPolicy)
    promotion = promotion_blocker(rollout, policy)
    if promotion is not None:
        raise ApplicationError(promotion, field="state", code="promotion")
    state = _lock_flag_state(rollout)
    rollout.captured_state = {
        "enabled": state.enabled,
        "rules": state.rules,
        "version": state.version,
    }
    from_state = rollout.state
    rollout.state = State.RUNNING
    rollout.started_at = now
    _save_live(rollout, actor, ["state", "started_at", "captured_state"])
    _record(
        rollout,
        kind=Kind.STARTED,
        source=source,
        actor=actor,
        at=now,
        due_at=due_at,
        data={"from_state": from_state, "captured_state": rollout.captured_state},
    )
    logger.info("rollout.started rollout_id=%s key=%s source=%s", rollout.id, rollout.key, source)
    _advance_to(
        rollout, phases, 0, now=now, actor=actor, source=source, due_at=due_at, windows=windows,
        policy=policy, state=state,
    )  # fmt: skip


@transaction.atomic
def rollout_start(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    override_window: bool = False,
    reason: str = "",
) -> Rollout:
    """draft/scheduled -> running: capture the flag's state and apply phase 1 now.

    Phase 1's gates (approval, checklist, the release completed in the environment before)
    must be satisfied; inside a freeze window only a person allowed to override it may start,
    with a reason (`override_window=True`).
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.DRAFT, State.SCHEDULED):
        raise _illegal(rollout, "start")
    phases = _phases(rollout)
    if phases:
        _check_gates(rollout, phases[0], "start")
    _check_window(
        rollout, now=now, actor=actor, source=source, doing="start",
        override=override_window, reason=reason,
    )  # fmt: skip
    _start(rollout, now=now, actor=actor, source=source, due_at=None)
    return rollout


def rollout_advance(
    *,
    rollout_id: int,
    expected_phase_index: int,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    reason: str = "",
    cache: SweepCache | None = None,
) -> bool:
    """The scheduler's step: apply the next phase if it is due. Idempotent.

    Returns False and changes nothing when another worker holds the row, the phase already
    moved (`expected_phase_index` is not the current one), the rollout is not running (or
    scheduled, for the start), the next phase is not due yet, or it waits for a person.

    `cache` shares the approval policies and windows between the steps of a batch; the
    row's lock query also says whether the next phase has an open checklist item and whether
    any approval request is pending, so an ungated step reads neither table again.
    """
    _source(source)
    now = _now(now)
    cache = cache if cache is not None else SweepCache()
    next_order = OuterRef("current_phase_index") + 1
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("flag", "environment")
            .annotate(
                next_checklist_open=Exists(
                    ChecklistItem.objects.filter(
                        phase__rollout=OuterRef("pk"),
                        phase__order=next_order,
                        ticked_at__isnull=True,
                    )
                ),
                approval_pending=Exists(
                    Approval.objects.filter(rollout=OuterRef("pk"), state=Approval.State.PENDING)
                ),
            )
            .filter(pk=rollout_id)
            .first()
        )
        if rollout is None or rollout.current_phase_index != expected_phase_index:
            return False
        starting = rollout.state == State.SCHEDULED and expected_phase_index == -1
        if not starting and rollout.state != State.RUNNING:
            return False
        phases = cache.phases(rollout)
        index = expected_phase_index + 1
        if index >= len(phases):
            return False
        windows = cache.windows(rollout.environment_id)
        due = _due(rollout, phases, windows)
        if due != rollout.next_due_at:
            # Windows (or the plan) changed since it was stored: keep the sweep's column true.
            Rollout.objects.filter(pk=rollout.pk).update(next_due_at=due)
        if due is None or due > now or phases[index].gate == Phase.Gate.MANUAL:
            return False
        block = windows_mod.blocking(now, windows)
        if block is not None:
            # Never inside a deny window, whatever the stored due time said.
            Rollout.objects.filter(pk=rollout.pk).update(next_due_at=block.until)
            logger.info("rollout.window_wait rollout_id=%s until=%s", rollout.id, block.until)
            return False
        policy = cache.policy(rollout.environment_id)
        # Ungated (no approval rule, no open checklist item, no promotion to wait for): the
        # gates are satisfied without reading them again.
        gated = (
            index == 0
            or rollout.next_checklist_open
            or approval_rule(phases[index], policy) is not None
        )
        status = gate_status(rollout, phases[index], policy=policy) if gated else None
        if status is not None and not status.satisfied:
            _refresh_gates(rollout, phases, now=now, actor=actor, source=source, policy=policy)
            logger.info(
                "rollout.gated rollout_id=%s phase=%s blockers=%d",
                rollout.id, index, len(status.blockers),
            )  # fmt: skip
            return False
        if starting:
            _start(
                rollout, now=now, actor=actor, source=source, due_at=due, windows=windows,
                policy=policy, phases=phases,
            )  # fmt: skip
            return True
        state = _lock_flag_state(rollout)
        edited = _hand_edit(rollout, phases, state)
        if edited is not None:
            _hold(
                rollout, kind=Hold.Kind.FLAG_EDITED, reason=edited, source=source, actor=actor,
                now=now,
            )  # fmt: skip
            return False
        _advance_to(
            rollout, phases, index, now=now, actor=actor, source=source, due_at=due, reason=reason,
            windows=windows, policy=policy, no_pending=not rollout.approval_pending, state=state,
        )  # fmt: skip
        return True


@transaction.atomic
def rollout_advance_now(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str,
    now: datetime | None = None,
    expected_phase_index: int | None = None,
    override_window: bool = False,
) -> Rollout:
    """A person starts the next phase now: skips the remaining soak or passes a manual gate.

    A reason is required to skip a soak; continuing past a due manual gate needs none.
    `expected_phase_index` (the phase the person saw) makes a double click harmless.
    Approvals and checklists of the next phase must be satisfied (nobody bypasses them);
    inside a freeze window `override_window=True` with the permission and a reason does.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.RUNNING:
        raise _illegal(rollout, "advance")
    if expected_phase_index is not None and rollout.current_phase_index != expected_phase_index:
        raise ConflictError(
            f"Rollout {rollout.key} already moved to phase {rollout.current_phase_index + 1}; "
            "reload to see where it is."
        )
    phases = _phases(rollout)
    index = rollout.current_phase_index + 1
    if index >= len(phases):
        raise ApplicationError(
            f"Rollout {rollout.key} is at its last phase; complete it instead.", field="state"
        )
    _check_gates(rollout, phases[index], "advance")
    state = _lock_flag_state(rollout)
    edited = _hand_edit(rollout, phases, state)
    if edited is not None:
        raise ConflictError(edited.replace("then resume to", "then hold and resume the rollout to"))
    due = scheduling.next_due_at(rollout, phases)
    skips_soak = due is None or due > now
    reason = (reason or "").strip()
    if skips_soak and not reason:
        raise ApplicationError(
            "Say why the remaining soak is skipped (it is recorded in the event log).",
            field="reason",
        )
    _check_window(
        rollout, now=now, actor=actor, source=source, doing="advance",
        override=override_window, reason=reason,
    )  # fmt: skip
    _advance_to(
        rollout,
        phases,
        index,
        now=now,
        actor=actor,
        source=source,
        due_at=due,
        reason=reason,
        data={"manual": True, "skipped_soak": skips_soak,
              "gate": phases[index].gate},
        state=state,
    )  # fmt: skip
    return rollout


@transaction.atomic
def rollout_pause(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    """running -> paused: exposure stays, the soak clock stops until resumed."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state != State.RUNNING:
        raise _illegal(rollout, "pause")
    rollout.state = State.PAUSED
    rollout.paused_at = now
    rollout.next_due_at = None
    _save(rollout, actor, ["state", "paused_at", "next_due_at"])
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
    _record(
        rollout,
        kind=Kind.PAUSED,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index,
        to_phase=rollout.current_phase_index,
        from_percentage=pct,
        to_percentage=pct,
    )
    logger.info("rollout.paused rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


def _finish(
    rollout: Rollout,
    *,
    state: str,
    now: datetime,
    actor: AbstractBaseUser | None,
    extra_fields: tuple[str, ...] = (),
) -> None:
    """Move a rollout to a final state: the clock stops for good and nothing is due."""
    _close_pause(rollout, now)
    rollout.state = state
    rollout.finished_at = now
    rollout.next_due_at = None
    rollout.held_from = ""
    fields = ["state", "finished_at", "next_due_at", "paused_at", "paused_for", "held_from"]
    _save(rollout, actor, [*fields, *extra_fields])


@transaction.atomic
def rollout_resume(
    *, rollout: Rollout, actor: AbstractBaseUser | None, source: str, now: datetime | None = None
) -> Rollout:
    """paused/held -> running: the soak continues where it stopped.

    A person resuming a held rollout clears every active hold (they are listed on the page
    with their causes); one that was held before it started goes back to scheduled.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in STOPPED_STATES:
        raise _illegal(rollout, "resume")
    from_state = rollout.state
    holds = _active_holds(rollout)
    if any(h.kind == Hold.Kind.FLAG_EDITED for h in holds):
        state = _current_flag_state(rollout)
        if state is not None:  # the person accepts the hand edit: the next phase applies over it
            _remember_flag_version(rollout, state.version)
    cleared = _clear_holds(holds, now=now, actor=actor, source=source, reason="resumed")
    stopped = _close_pause(rollout, now)
    rollout.state = State.SCHEDULED if rollout.current_phase_index < 0 else State.RUNNING
    rollout.held_from = ""
    phases = _phases(rollout)
    rollout.next_due_at = _due(rollout, phases)
    _save(rollout, actor, ["state", "held_from", "paused_at", "paused_for", "next_due_at"])
    pct = _percentage(phases, rollout.current_phase_index)
    _record(
        rollout,
        kind=Kind.RESUMED,
        source=source,
        actor=actor,
        at=now,
        due_at=rollout.next_due_at,
        from_phase=rollout.current_phase_index,
        to_phase=rollout.current_phase_index,
        from_percentage=pct,
        to_percentage=pct,
        data={
            "from_state": from_state,
            "to_state": rollout.state,
            "stopped_seconds": stopped.total_seconds(),
            "cleared_holds": cleared,
        },
    )
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    logger.info("rollout.resumed rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


@transaction.atomic
def rollout_complete(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
    override_window: bool = False,
    reason: str = "",
) -> Rollout:
    """running/paused/held -> completed: the last phase's exposure applies now.

    Jumping ahead passes every remaining phase, so all their gates must be satisfied; inside
    a freeze window it needs an override with a reason.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.RUNNING, *STOPPED_STATES) or rollout.current_phase_index < 0:
        raise _illegal(rollout, "complete")
    phases = _phases(rollout)
    last = len(phases) - 1
    if rollout.current_phase_index < last:
        policy = environment_policy(rollout.environment_id)
        for phase in phases[rollout.current_phase_index + 1 :]:
            status = gate_status(rollout, phase, policy=policy)
            if not status.satisfied:
                raise ApplicationError(
                    f"Cannot complete rollout {rollout.key}: "
                    + " ".join(status.blockers)
                    + " Advance through the gated phases instead.",
                    field="gates",
                    code="gated",
                )
        _check_window(
            rollout, now=now, actor=actor, source=source, doing="complete",
            override=override_window, reason=reason,
        )  # fmt: skip
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="completed"
    )
    rollout.held_from = ""
    _close_pause(rollout, now)
    if rollout.current_phase_index < last:
        skipped = list(range(rollout.current_phase_index + 1, last))
        _advance_to(
            rollout, phases, last, now=now, actor=actor, source=source, due_at=None,
            reason=reason, data={"manual": True, "skipped_phases": skipped,
                                 "cleared_holds": cleared},
        )  # fmt: skip
        return rollout
    # Already at the last phase (its plan was shortened): only the state changes.
    _finish(rollout, state=State.COMPLETED, now=now, actor=actor)
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    _record(
        rollout,
        kind=Kind.COMPLETED,
        source=source,
        actor=actor,
        at=now,
        to_phase=rollout.current_phase_index,
        to_percentage=_percentage(phases, rollout.current_phase_index),
    )
    logger.info("rollout.completed rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


@transaction.atomic
def rollout_cancel(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
) -> Rollout:
    """Stop the plan. Before the start nothing changed; a running rollout leaves the flag's
    current exposure as it is (roll back to undo it)."""
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.state not in (State.DRAFT, *LIVE_STATES):
        raise _illegal(rollout, "cancel")
    from_state = rollout.state
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="cancelled"
    )
    _finish(rollout, state=State.CANCELLED, now=now, actor=actor)
    phases = _phases(rollout)
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    pct = _percentage(phases, rollout.current_phase_index)
    _record(
        rollout,
        kind=Kind.CANCELLED,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index if rollout.current_phase_index >= 0 else None,
        from_percentage=pct,
        to_percentage=pct,
        data={"from_state": from_state, "cleared_holds": cleared},
    )
    logger.info("rollout.cancelled rollout_id=%s key=%s", rollout.id, rollout.key)
    return rollout


def allowed_actions(rollout: Rollout) -> set[str]:
    """The actions the rollout's state allows (permissions are checked by the views).

    Uses `rollout.phases.all()`: prefetch phases when calling this for many rollouts.
    """
    state = rollout.state
    if state == State.DRAFT:
        return {"edit_plan", "schedule", "start", "cancel"}
    if state == State.SCHEDULED:
        return {"edit_plan", "start", "cancel", "hold"}
    if state == State.RUNNING:
        actions = {"edit_plan", "pause", "complete", "cancel", "rollback", "hold"}
        if rollout.current_phase_index + 1 < len(rollout.phases.all()):
            actions.add("advance_now")
        return actions
    if state in STOPPED_STATES:
        if rollout.current_phase_index < 0:  # held before it started
            return {"edit_plan", "resume", "cancel", "hold"}
        return {"edit_plan", "resume", "complete", "cancel", "rollback", "hold"}
    if state == State.COMPLETED:
        return {"rollback"}
    return set()


def rollout_exposure(rollout: Rollout) -> int | None:
    """The percentage the rollout applies now (None before the start or audience-only)."""
    if rollout.state in (State.DRAFT, State.SCHEDULED, State.CANCELLED) and (
        rollout.current_phase_index < 0
    ):
        return None
    if rollout.state == State.ROLLED_BACK and rollout.rollback_mode != Rollout.RollbackMode.FREEZE:
        return 0
    phases = list(rollout.phases.all())
    index = rollout.current_phase_index
    return phases[index].percentage if 0 <= index < len(phases) else None
