"""Rolling a rollout back: restore the flag as it was before the rollout (or freeze it at
its pre-rollout rules), refused when a newer rollout changed the flag since, so a rollback
never clobbers newer work. Part of the state machine in `rollouts.services.lifecycle`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.exceptions import ApplicationError, ConflictError
from flags.models import Segment
from flags.services import flag_state_update, through_rollout
from rollouts import strategies
from rollouts.models import (
    Rollout,
    RolloutEvent,
)
from rollouts.services.common import (
    STOPPED_STATES,
    _illegal,
    _lock,
    _now,
    _percentage,
    _phases,
    _source,
)
from rollouts.services.events import _record
from rollouts.services.gates import (
    _refresh_gates,
)
from rollouts.services.holds import _active_holds, _clear_holds
from rollouts.services.lifecycle import (
    INSTANT_ROLLBACK,
    _finish,
    rollout_exposure,
)

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind


def _newer_rollout(rollout: Rollout) -> Rollout | None:
    """A rollout of the same flag and environment that changed the flag after this one did."""
    if rollout.started_at is None:
        return None
    return (
        Rollout.objects.filter(
            flag_id=rollout.flag_id,
            environment_id=rollout.environment_id,
            started_at__gt=rollout.started_at,
        )
        .exclude(pk=rollout.pk)
        # A newer rollout rolled back with "restore" gave the flag back as this one left it.
        .exclude(state=State.ROLLED_BACK, rollback_mode=Rollout.RollbackMode.RESTORE)
        .order_by("-started_at")
        .first()
    )


def _restorable_rules(rules: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The captured rules, minus those naming a segment deleted since the capture.

    Such a rule matches nobody (a missing segment is false), so dropping it restores the same
    behaviour, and the rollback cannot be refused for it. Returns (rules, dropped positions).
    """
    wanted = {s for rule in rules for s in rule.get("segments") or []}
    if not wanted:
        return rules, []
    existing = set(Segment.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    kept, dropped = [], []
    for position, rule in enumerate(rules, start=1):
        if set(rule.get("segments") or []) <= existing:
            kept.append(rule)
        else:
            dropped.append(position)
    return kept, dropped


@transaction.atomic
def rollout_rollback(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    reason: str = "",
    now: datetime | None = None,
    mode: str = Rollout.RollbackMode.RESTORE,
) -> Rollout:
    """running/paused/held/completed -> rolled back.

    `mode` "restore" (default): the flag's captured state returns at once. "freeze": the plan
    stops and the exposure stays where it is (not for canary and blue/green, which always
    switch back at once, nor for a completed rollout, whose exposure is already full).
    """
    _source(source)
    now = _now(now)
    if mode not in Rollout.RollbackMode.values:
        raise ApplicationError(
            f"Unknown rollback mode {mode!r}; use restore or freeze.", field="mode"
        )
    rollout = _lock(rollout)
    if rollout.state not in (State.RUNNING, *STOPPED_STATES, State.COMPLETED) or (
        rollout.current_phase_index < 0
    ):
        raise _illegal(rollout, "roll back")
    freeze = mode == Rollout.RollbackMode.FREEZE
    if freeze and rollout.strategy in INSTANT_ROLLBACK:
        raise ApplicationError(
            f"A {rollout.get_strategy_display().lower()} rollout rolls back at once to the "
            "previous version; it cannot be frozen at its current exposure.",
            field="mode",
        )
    if freeze and rollout.state == State.COMPLETED:
        raise ApplicationError(
            f"Rollout {rollout.key} is complete: freezing keeps the full exposure. Restore the "
            "rules from before the rollout instead.",
            field="mode",
        )
    newer = None if freeze else _newer_rollout(rollout)
    if newer is not None:
        pct = rollout_exposure(newer)
        at = f", {pct}%" if pct is not None else ""
        raise ConflictError(
            f"Rollout {newer.key} ({newer.get_state_display().lower()}{at}) changed "
            f"{rollout.flag.key} in {rollout.environment.name} after {rollout.key}; restoring "
            f"the flag as it was before {rollout.key} would overwrite it. Roll back {newer.key} "
            "first."
        )
    captured = rollout.captured_state
    if not freeze and not isinstance(captured, dict):
        raise ApplicationError(
            f"Rollout {rollout.key} has no captured flag state to restore.", field="state"
        )
    from_state = rollout.state
    cleared = _clear_holds(
        _active_holds(rollout), now=now, actor=actor, source=source, reason="rolled back"
    )
    rollout.rollback_mode = mode
    _finish(rollout, state=State.ROLLED_BACK, now=now, actor=actor, extra_fields=("rollback_mode",))
    phases = _phases(rollout)
    _refresh_gates(rollout, phases, now=now, actor=actor, source=source)
    current = _percentage(phases, rollout.current_phase_index)
    data: dict[str, Any] = {"from_state": from_state, "mode": mode, "cleared_holds": cleared}
    if freeze:
        _record(
            rollout,
            kind=Kind.ROLLED_BACK,
            source=source,
            actor=actor,
            at=now,
            reason=reason,
            from_phase=rollout.current_phase_index,
            to_phase=rollout.current_phase_index,
            from_percentage=current,
            to_percentage=current,
            data=data,
        )
        logger.info(
            "rollout.rolled_back rollout_id=%s key=%s source=%s mode=freeze",
            rollout.id, rollout.key, source,
        )  # fmt: skip
        return rollout
    assert isinstance(captured, dict)
    rules, dropped = _restorable_rules(list(captured.get("rules") or []))
    enabled = bool(captured.get("enabled"))
    if not strategies.answers_explicitly(rollout.strategy, enabled=enabled, rules=rules):
        # A slot flag never falls back to the caller's default: everyone back on the old slot.
        enabled, rules = (
            True,
            strategies.resting_rules(
                strategy_key=rollout.strategy,
                flag_key=rollout.flag.key,
                title=f"Rollout {rollout.key}: rolled back"[:200],
            ),
        )
    _record(
        rollout,
        kind=Kind.ROLLED_BACK,
        source=source,
        actor=actor,
        at=now,
        reason=reason,
        from_phase=rollout.current_phase_index,
        from_percentage=current,
        to_percentage=0,
        data={**data, "restored": captured, "dropped_rules": dropped},
    )
    with through_rollout():  # back to the state before the rollout
        flag_state_update(
            flag=rollout.flag,
            environment=rollout.environment,
            actor=actor,
            enabled=enabled,
            rules=rules,
        )
    logger.info(
        "rollout.rolled_back rollout_id=%s key=%s source=%s mode=restore",
        rollout.id, rollout.key, source,
    )  # fmt: skip
    return rollout
