"""Holds: a rollout stopped (clock and all) for a reason until the hold is cleared.

Several holds can be active at once (manual, a declined approval, a freeze, an alert); a
person resuming clears them all, clearing the last one leaves the rollout paused (or running
again when its alert policy says auto-resume). An emergency freeze holds every live rollout a
window applies to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.exceptions import ApplicationError
from rollouts.models import Approval, FreezeWindow, Hold, Rollout, RolloutEvent
from rollouts.services.common import (
    _close_pause,
    _illegal,
    _lock,
    _now,
    _percentage,
    _phases,
    _save,
    _source,
    _user,
)
from rollouts.services.events import _record
from rollouts.services.gates import _refresh_gates
from rollouts.services.windows import _due

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind


def _active_holds(rollout: Rollout) -> list[Hold]:
    return list(rollout.holds.filter(cleared_at__isnull=True).order_by("held_at", "id"))


def _clear_holds(
    holds: Sequence[Hold],
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str,
) -> list[int]:
    ids = [h.id for h in holds]
    if ids:
        Hold.objects.filter(pk__in=ids).update(
            cleared_at=now,
            cleared_by=_user(actor),
            cleared_source=source,
            clear_reason=reason,
            updated_at=now,
        )
    return ids


def _hold(
    rollout: Rollout,
    *,
    kind: str,
    reason: str,
    source: str,
    actor: AbstractBaseUser | None,
    now: datetime,
    approval: Approval | None = None,
    window: FreezeWindow | None = None,
    alert: dict[str, Any] | None = None,
) -> Hold:
    """Add a hold to a locked rollout: it becomes (or stays) held, its clock stopped."""
    if rollout.state not in (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD):
        raise _illegal(rollout, "hold")
    alert = alert or {}
    hold = Hold.objects.create(
        rollout=rollout,
        kind=kind,
        reason=reason,
        source=source,
        created_by=_user(actor),
        held_at=now,
        approval=approval,
        window=window,
        alert_key=str(alert.get("key", ""))[:200],
        alert_fingerprint=str(alert.get("fingerprint", ""))[:128],
        alert_name=str(alert.get("name", ""))[:200],
        alert_labels=alert.get("labels") or {},
    )
    from_state = rollout.state
    if rollout.state != State.HELD:
        rollout.held_from = rollout.state
        if rollout.paused_at is None:
            rollout.paused_at = now
        rollout.state = State.HELD
        rollout.next_due_at = None
        _save(rollout, actor, ["state", "held_from", "paused_at", "next_due_at"])
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
    index = rollout.current_phase_index if rollout.current_phase_index >= 0 else None
    _record(
        rollout,
        kind=Kind.HELD,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=index,
        to_phase=index,
        from_percentage=pct,
        to_percentage=pct,
        data={
            "hold_id": hold.id,
            "hold_kind": kind,
            "from_state": from_state,
            "already_held": from_state == State.HELD,
            **({"alert": alert.get("name"), "fingerprint": alert.get("fingerprint")}
               if alert else {}),
        },
    )  # fmt: skip
    logger.info(
        "rollout.held rollout_id=%s key=%s hold_id=%s kind=%s source=%s",
        rollout.id, rollout.key, hold.id, kind, source,
    )  # fmt: skip
    return hold


@transaction.atomic
def rollout_hold(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str,
    now: datetime | None = None,
    kind: str = Hold.Kind.MANUAL,
) -> Rollout:
    """Hold a scheduled, running or paused rollout: the clock stops, exposure stays.

    Several holds can be active at once (each with its reason); the rollout runs again only
    when a person resumes it (which clears them all) or, after its last hold is cleared, when
    its alert policy says auto-resume.
    """
    _source(source)
    now = _now(now)
    if kind not in Hold.Kind.values:
        raise ApplicationError(f"Unknown hold reason {kind!r}.", field="kind")
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(
            "Say why the rollout is held (people see it until the hold is cleared).",
            field="reason",
        )
    rollout = _lock(rollout)
    _hold(rollout, kind=kind, reason=reason, source=source, actor=actor, now=now)
    return rollout


@transaction.atomic
def rollout_hold_clear(
    *,
    hold: Hold,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
    auto_resume: bool = False,
) -> Rollout:
    """Clear one hold (idempotent). When it was the last one the rollout stays stopped
    (paused: a person resumes it), unless `auto_resume` and it was running (or scheduled)
    before it was held."""
    _source(source)
    now = _now(now)
    rollout = _lock(hold.rollout)
    hold = Hold.objects.select_for_update().get(pk=hold.pk)
    if hold.cleared_at is not None:
        return rollout
    hold.cleared_at = now
    hold.cleared_by = _user(actor)
    hold.cleared_source = source
    hold.clear_reason = (reason or "").strip()
    hold.save(
        update_fields=["cleared_at", "cleared_by", "cleared_source", "clear_reason", "updated_at"]
    )
    remaining = rollout.holds.filter(cleared_at__isnull=True).count()
    auto_resumed = False
    fields: list[str] = []
    if rollout.state == State.HELD and not remaining:
        back = rollout.held_from or State.PAUSED
        if auto_resume and back in (State.RUNNING, State.SCHEDULED):
            _close_pause(rollout, now)
            rollout.state = back
            auto_resumed = True
            fields += ["paused_at", "paused_for"]
        else:
            rollout.state = State.PAUSED
        rollout.held_from = ""
        phases = _phases(rollout)
        rollout.next_due_at = _due(rollout, phases)
        _save(rollout, actor, ["state", "held_from", "next_due_at", *fields])
        if auto_resumed:
            _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    pct = _percentage(_phases(rollout), rollout.current_phase_index)
    index = rollout.current_phase_index if rollout.current_phase_index >= 0 else None
    _record(
        rollout,
        kind=Kind.HOLD_CLEARED,
        source=source,
        actor=actor,
        at=now,
        reason=hold.clear_reason,
        due_at=rollout.next_due_at,
        from_phase=index,
        to_phase=index,
        from_percentage=pct,
        to_percentage=pct,
        data={
            "hold_id": hold.id,
            "hold_kind": hold.kind,
            "to_state": rollout.state,
            "remaining_holds": remaining,
            "auto_resumed": auto_resumed,
            **({"fingerprint": hold.alert_fingerprint, "alert": hold.alert_name}
               if hold.kind == Hold.Kind.ALERT else {}),
        },
    )  # fmt: skip
    logger.info(
        "rollout.hold_cleared rollout_id=%s hold_id=%s kind=%s to_state=%s remaining=%d",
        rollout.id, hold.id, hold.kind, rollout.state, remaining,
    )  # fmt: skip
    return rollout


@transaction.atomic
def window_hold_rollouts(
    *,
    window: FreezeWindow,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
) -> int:
    """An emergency freeze: hold every live rollout the window applies to (a `freeze` hold
    each, so the clock stops too). Returns how many were held."""
    _source(source)
    now = _now(now)
    if window.kind != FreezeWindow.Kind.DENY:
        raise ApplicationError("Only a freeze (deny) window can hold rollouts.", field="kind")
    qs = Rollout.objects.filter(state__in=(State.SCHEDULED, State.RUNNING, State.PAUSED))
    if window.environment_id is not None:
        qs = qs.filter(environment_id=window.environment_id)
    text = (reason or "").strip() or f"Freeze window “{window.name}”"
    held = 0
    for rollout in qs.order_by("id"):
        locked = _lock(rollout)
        if locked.state in (State.SCHEDULED, State.RUNNING, State.PAUSED):
            _hold(
                locked, kind=Hold.Kind.FREEZE, reason=text, source=source, actor=actor,
                now=now, window=window,
            )  # fmt: skip
            held += 1
    logger.info("window.held_rollouts window_id=%s held=%d", window.id, held)
    return held
