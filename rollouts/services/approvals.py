"""What people do at a phase's gates: ask for and decide approvals, tick checklist steps,
and (admins) set an environment's approval policy, which live rollouts follow at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.exceptions import ApplicationError
from flags.models import Environment
from rollouts.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ChecklistItem,
    Hold,
    Rollout,
    RolloutEvent,
)
from rollouts.services.common import (
    APPROVE_PERMISSION,
    LIVE_STATES,
    _lock,
    _may,
    _now,
    _phases,
    _source,
    _user,
)
from rollouts.services.events import _record
from rollouts.services.gates import (
    _live_approval,
    _refresh_gates,
    _request_approval,
    approval_rule,
    environment_policy,
)
from rollouts.services.holds import _hold

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind
Source = RolloutEvent.Source


@transaction.atomic
def approval_request(
    *,
    rollout: Rollout,
    actor: AbstractBaseUser | None,
    source: str,
    now: datetime | None = None,
) -> Approval:
    """Ask for the approval the rollout's next phase needs (e.g. before starting a draft).

    Live rollouts ask by themselves when they reach the phase before a gated one; this is for
    drafts and for asking again after a request was declined or withdrawn.
    """
    _source(source)
    now = _now(now)
    rollout = _lock(rollout)
    if rollout.is_final:
        raise ApplicationError(
            f"Rollout {rollout.key} has finished; there is nothing to approve.", field="state"
        )
    phases = _phases(rollout)
    index = rollout.current_phase_index + 1
    if index >= len(phases):
        raise ApplicationError(
            f"Rollout {rollout.key} is at its last phase; there is nothing to approve.",
            field="state",
        )
    phase = phases[index]
    rule = approval_rule(phase, environment_policy(rollout.environment_id))
    if rule is None:
        raise ApplicationError(
            f"Phase {index + 1} ({phase.name}) needs no approval.", field="phase"
        )
    if rollout.state == State.HELD:
        raise ApplicationError(
            f"Rollout {rollout.key} is held; resume it and the approval is requested again.",
            field="state",
        )
    existing = _live_approval(phase)
    if existing is not None:
        return existing
    return _request_approval(rollout, phase, rule, now=now, actor=actor, source=source)


@dataclass(frozen=True)
class DecisionResult:
    approval: Approval
    complete: bool  # the request is decided (approved by enough people, or declined)


@transaction.atomic
def approval_decide(
    *,
    approval: Approval,
    actor: AbstractBaseUser | None,
    decision: str,
    comment: str = "",
    source: str,
    now: datetime | None = None,
) -> DecisionResult:
    """Approve or decline a pending request.

    Approving counts once per person; the request is granted when `required` different people
    approved. The requester cannot approve their own request unless the policy allows it.
    Declining needs a comment; it declines the request and holds the rollout with it.
    """
    _source(source)
    now = _now(now)
    if decision not in ApprovalDecision.Decision.values:
        raise ApplicationError("Approve or decline.", field="decision")
    user = _user(actor)
    if user is None or not _may(user, APPROVE_PERMISSION):
        raise ApplicationError(
            "Approving rollouts needs the Release managers role.",
            field="decision",
            code="forbidden",
        )
    comment = (comment or "").strip()
    rollout = _lock(approval.rollout)
    approval = Approval.objects.select_for_update().select_related("phase").get(pk=approval.pk)
    if approval.state != Approval.State.PENDING:
        raise ApplicationError(
            f"This request is {approval.get_state_display().lower()} already; nothing to decide.",
            field="decision",
            code="illegal_transition",
        )
    phase = approval.phase
    if approval.decisions.filter(user=user).exists():
        raise ApplicationError("You already decided on this request.", field="decision")
    own = approval.requested_by_id is not None and approval.requested_by_id == user.pk
    approve = decision == ApprovalDecision.Decision.APPROVE
    if approve and own and not approval.allow_self_approval:
        raise ApplicationError(
            "You asked for this approval, so someone else must give it (four eyes).",
            field="decision",
            code="self_approval",
        )
    if not approve and not comment:
        raise ApplicationError(
            "Say why you decline (the rollout is held with your reason).", field="comment"
        )
    ApprovalDecision.objects.create(
        approval=approval, user=user, decision=decision, comment=comment, at=now
    )
    given = approval.decisions.filter(decision=ApprovalDecision.Decision.APPROVE).count()
    pct = phase.percentage
    base = {
        "approval_id": approval.id,
        "phase": phase.name,
        "required": approval.required,
        "approvals": given,
    }
    if approve:
        complete = given >= approval.required
        if complete:
            approval.state = Approval.State.APPROVED
            approval.decided_at = now
            approval.save(update_fields=["state", "decided_at", "updated_at"])
        _record(
            rollout,
            kind=Kind.APPROVED,
            source=source,
            actor=user,
            at=now,
            reason=comment,
            to_phase=phase.order,
            to_percentage=pct,
            data={**base, "complete": complete},
        )
        logger.info(
            "approval.approved approval_id=%s user_id=%s approvals=%d required=%d",
            approval.id, user.pk, given, approval.required,
        )  # fmt: skip
        return DecisionResult(approval, complete)
    approval.state = Approval.State.DECLINED
    approval.decided_at = now
    approval.save(update_fields=["state", "decided_at", "updated_at"])
    _record(
        rollout,
        kind=Kind.DECLINED,
        source=source,
        actor=user,
        at=now,
        reason=comment,
        to_phase=phase.order,
        to_percentage=pct,
        data={**base, "complete": True},
    )
    if rollout.state in LIVE_STATES:
        _hold(
            rollout,
            kind=Hold.Kind.DECLINED,
            reason=f"Approval of phase {phase.order + 1} ({phase.name}) declined: {comment}",
            source=source,
            actor=user,
            now=now,
            approval=approval,
        )
    logger.info("approval.declined approval_id=%s user_id=%s", approval.id, user.pk)
    return DecisionResult(approval, True)


@transaction.atomic
def checklist_tick(
    *,
    item: ChecklistItem,
    actor: AbstractBaseUser | None,
    source: str,
    ticked: bool = True,
    note: str = "",
    now: datetime | None = None,
) -> ChecklistItem:
    """Tick (or untick) a step of a phase's checklist; who and when are recorded."""
    _source(source)
    now = _now(now)
    rollout = _lock(item.phase.rollout)
    item = ChecklistItem.objects.select_for_update().select_related("phase").get(pk=item.pk)
    phase = item.phase
    if rollout.is_final:
        raise ApplicationError(
            f"Rollout {rollout.key} has finished; its checklists are closed.", field="state"
        )
    if phase.order <= rollout.current_phase_index:
        raise ApplicationError(
            f"Phase {phase.order + 1} ({phase.name}) has started; its checklist is closed.",
            field="state",
        )
    if item.is_ticked == ticked:
        return item  # already so: a double click changes nothing
    user = _user(actor)
    item.ticked_by = user if ticked else None
    item.ticked_at = now if ticked else None
    item.note = (note or "").strip()[:500] if ticked else ""
    item.save(update_fields=["ticked_by", "ticked_at", "note", "updated_at"])
    _record(
        rollout,
        kind=Kind.CHECKLIST_TICKED if ticked else Kind.CHECKLIST_UNTICKED,
        source=source,
        actor=user,
        at=now,
        reason=item.note,
        to_phase=phase.order,
        data={"item_id": item.id, "label": item.label, "phase": phase.name},
    )
    logger.info(
        "checklist.%s item_id=%s rollout_id=%s phase=%s",
        "ticked" if ticked else "unticked", item.id, rollout.id, phase.order,
    )  # fmt: skip
    return item


@transaction.atomic
def approval_policy_set(
    *,
    environment: Environment,
    actor: AbstractBaseUser | None,
    min_percentage: int | None = None,
    approvals_required: int = 1,
    allow_self_approval: bool = False,
    requires_completed_in: Environment | None = None,
    now: datetime | None = None,
) -> ApprovalPolicy:
    """Create or replace an environment's gates; live rollouts there follow at once (their
    next phase asks for approval, or a request that is no longer needed is withdrawn)."""
    now = _now(now)
    if min_percentage is not None and not 0 <= int(min_percentage) <= 100:
        raise ApplicationError("The percentage is between 0 and 100.", field="min_percentage")
    if not 1 <= int(approvals_required) <= 10:
        raise ApplicationError("Between 1 and 10 approvers.", field="approvals_required")
    if requires_completed_in is not None and requires_completed_in.pk == environment.pk:
        raise ApplicationError(
            "An environment cannot require a release to complete in itself first.",
            field="requires_completed_in",
        )
    if requires_completed_in is not None:
        loop = ApprovalPolicy.objects.filter(
            environment=requires_completed_in, requires_completed_in=environment
        ).exists()
        if loop:
            raise ApplicationError(
                f"{requires_completed_in.name} already requires {environment.name} first; "
                "promotion cannot go both ways.",
                field="requires_completed_in",
            )
    policy, _ = ApprovalPolicy.objects.select_for_update().get_or_create(environment=environment)
    policy.min_percentage = None if min_percentage is None else int(min_percentage)
    policy.approvals_required = int(approvals_required)
    policy.allow_self_approval = bool(allow_self_approval)
    policy.requires_completed_in = requires_completed_in
    user = _user(actor)
    if user is not None:
        policy._history_user = user  # type: ignore[attr-defined]
    policy.save()
    _policy_changed(environment.id, actor=actor, now=now)
    logger.info("approval_policy.set environment=%s", environment.key)
    return policy


@transaction.atomic
def approval_policy_delete(
    *, environment: Environment, actor: AbstractBaseUser | None, now: datetime | None = None
) -> None:
    ApprovalPolicy.objects.filter(environment=environment).delete()
    _policy_changed(environment.id, actor=actor, now=_now(now))
    logger.info("approval_policy.deleted environment=%s", environment.key)


def _policy_changed(environment_id: int, *, actor: AbstractBaseUser | None, now: datetime) -> None:
    policy = environment_policy(environment_id)
    live = Rollout.objects.filter(
        environment_id=environment_id, state__in=(State.SCHEDULED, State.RUNNING, State.PAUSED)
    )
    for rollout in live.order_by("id"):
        locked = _lock(rollout)
        _refresh_gates(
            locked, _phases(locked), now=now, actor=actor, source=Source.SYSTEM, policy=policy
        )
