"""Gates of a phase: what it waits for before anyone or anything may start it.

An approval (asked by the plan or by the environment's policy), its checklist, and for the
first phase the same release completed in another environment (promotion). Gates block every
move *into* the gated phase, by the clock or by a person, and nobody can override them.
`_refresh_gates` keeps approval requests in line with the rollout after each transition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from core.exceptions import ApplicationError
from rollouts.models import Approval, ApprovalPolicy, ChecklistItem, Phase, Rollout, RolloutEvent
from rollouts.services.common import LIVE_STATES, _user
from rollouts.services.events import _record

logger = logging.getLogger(__name__)

State = Rollout.State
Kind = RolloutEvent.Kind


@dataclass(frozen=True)
class ApprovalRule:
    """Why a phase needs approval, and how."""

    required: int
    allow_self_approval: bool
    why: str


def environment_policy(environment_id: int) -> ApprovalPolicy | None:
    return (
        ApprovalPolicy.objects.select_related("requires_completed_in", "environment")
        .filter(environment_id=environment_id)
        .first()
    )


def approval_rule(phase: Phase, policy: ApprovalPolicy | None) -> ApprovalRule | None:
    """The approval a phase needs (from the plan and the environment's policy), or None."""
    why: list[str] = []
    if phase.requires_approval:
        why.append("the plan asks for approval of this phase")
    if policy is not None and policy.min_percentage is not None:
        if policy.min_percentage == 0:
            why.append("the environment's policy asks for approval of every phase")
        elif (phase.percentage or 0) >= policy.min_percentage:
            why.append(
                f"the environment's policy asks for approval of phases reaching "
                f"{policy.min_percentage}% or more"
            )
    if not why:
        return None
    return ApprovalRule(
        required=policy.approvals_required if policy is not None else 1,
        allow_self_approval=policy.allow_self_approval if policy is not None else False,
        why="; ".join(why),
    )


def promotion_blocker(rollout: Rollout, policy: ApprovalPolicy | None) -> str | None:
    """Why the rollout may not start yet: the same release must complete elsewhere first."""
    if policy is None or policy.requires_completed_in_id is None:
        return None
    there = policy.requires_completed_in
    if there is None:  # pragma: no cover - the id is set, so the environment exists
        return None
    others = list(
        Rollout.objects.filter(release_id=rollout.release_id, environment_id=there.id)
        .order_by("-created_at")
        .values_list("key", "state")
    )
    if any(state == State.COMPLETED for _, state in others):
        return None
    release = rollout.release
    if not others:
        return (
            f"{release} must complete in {there.name} before it starts in "
            f"{rollout.environment.name}; it has no rollout there yet."
        )
    key, state = others[0]
    return (
        f"{release} must complete in {there.name} before it starts in "
        f"{rollout.environment.name}; rollout {key} there is {State(state).label.lower()}."
    )


@dataclass
class GateStatus:
    """What a phase still waits for before anyone or anything may start it."""

    phase: Phase
    rule: ApprovalRule | None
    approval: Approval | None  # the live (pending or granted) request
    approvals_given: int
    open_items: list[ChecklistItem]
    promotion: str | None = None

    @property
    def approved(self) -> bool:
        return self.rule is None or (
            self.approval is not None and self.approval.state == Approval.State.APPROVED
        )

    @property
    def satisfied(self) -> bool:
        return self.approved and not self.open_items and self.promotion is None

    @property
    def blockers(self) -> list[str]:
        name = f"Phase {self.phase.order + 1} ({self.phase.name})"
        found: list[str] = []
        if self.promotion:
            found.append(self.promotion)
        if not self.approved:
            assert self.rule is not None
            if self.approval is None:
                found.append(f"{name} needs approval ({self.rule.why}); request it first.")
            else:
                found.append(
                    f"{name} waits for approval: {self.approvals_given} of "
                    f"{self.approval.required} given."
                )
        if self.open_items:
            labels = ", ".join(f"“{i.label}”" for i in self.open_items)
            found.append(f"{name} waits for its checklist: {labels} not ticked yet.")
        return found


def _live_approval(phase: Phase) -> Approval | None:
    return (
        Approval.objects.filter(
            phase=phase, state__in=(Approval.State.PENDING, Approval.State.APPROVED)
        )
        .order_by("-requested_at", "-id")
        .first()
    )


def gate_status(
    rollout: Rollout, phase: Phase, *, policy: ApprovalPolicy | bool | None = False
) -> GateStatus:
    """The gates of `phase` now (a few queries). `policy=False` loads the environment's."""
    if policy is False:
        policy = environment_policy(rollout.environment_id)
    assert policy is None or isinstance(policy, ApprovalPolicy)
    rule = approval_rule(phase, policy)
    approval = _live_approval(phase) if rule is not None else None
    given = (
        approval.decisions.filter(decision="approve").count()
        if approval is not None and approval.state == Approval.State.PENDING
        else (approval.required if approval is not None else 0)
    )
    items = list(phase.checklist.filter(ticked_at__isnull=True).order_by("position", "id"))
    promotion = promotion_blocker(rollout, policy) if phase.order == 0 else None
    return GateStatus(phase, rule, approval, given, items, promotion)


def _requester(rollout: Rollout, actor: AbstractBaseUser | None) -> Any:
    user = _user(actor)
    return user if user is not None else rollout.owner


def _request_approval(
    rollout: Rollout,
    phase: Phase,
    rule: ApprovalRule,
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
) -> Approval:
    approval = Approval.objects.create(
        rollout=rollout,
        phase=phase,
        required=rule.required,
        allow_self_approval=rule.allow_self_approval,
        why=rule.why[:300],
        requested_by=_requester(rollout, actor),
        requested_at=now,
    )
    _record(
        rollout,
        kind=Kind.APPROVAL_REQUESTED,
        source=source,
        actor=actor,
        at=now,
        from_phase=rollout.current_phase_index if rollout.current_phase_index >= 0 else None,
        to_phase=phase.order,
        from_percentage=None,
        to_percentage=phase.percentage,
        reason=rule.why,
        data={
            "approval_id": approval.id,
            "phase": phase.name,
            "required": rule.required,
            "requested_by": approval.requested_by.get_username() if approval.requested_by else None,
        },
    )
    logger.info(
        "approval.requested approval_id=%s rollout_id=%s phase=%s required=%s",
        approval.id, rollout.id, phase.order, rule.required,
    )  # fmt: skip
    return approval


def _refresh_gates(
    rollout: Rollout,
    phases: Sequence[Phase],
    *,
    now: datetime,
    actor: AbstractBaseUser | None,
    source: str,
    policy: ApprovalPolicy | bool | None = False,
    no_pending: bool = False,
) -> Approval | None:
    """Keep approval requests in line with the rollout: the next phase of a live rollout has
    one when it needs one; requests of other phases (or of finished rollouts) are withdrawn.
    Returns the next phase's live request, if any. Caller holds the rollout's lock.

    `no_pending=True`: the caller read, under that lock, that the rollout has no pending
    request (the scheduler's step), so there is nothing to withdraw and no query is needed
    for a phase without an approval rule."""
    index = rollout.current_phase_index + 1
    live = rollout.state in LIVE_STATES
    phase = phases[index] if live and 0 <= index < len(phases) else None
    if not no_pending:
        stale = Approval.objects.filter(rollout=rollout, state=Approval.State.PENDING)
        if phase is not None:
            stale = stale.exclude(phase=phase)
        stale.update(state=Approval.State.CANCELLED, decided_at=now, updated_at=now)
    if phase is None or rollout.state == State.HELD:
        # Held: a declined request stays declined until a person resumes; then we ask again.
        return None
    if policy is False:
        policy = environment_policy(rollout.environment_id)
    assert policy is None or isinstance(policy, ApprovalPolicy)
    rule = approval_rule(phase, policy)
    if rule is None and no_pending:
        return None  # nothing pending to withdraw
    current = _live_approval(phase)
    if rule is None:
        if current is not None and current.state == Approval.State.PENDING:
            current.state = Approval.State.CANCELLED
            current.decided_at = now
            current.save(update_fields=["state", "decided_at", "updated_at"])
        return None
    if current is None:
        current = _request_approval(rollout, phase, rule, now=now, actor=actor, source=source)
    return current


def _check_gates(rollout: Rollout, phase: Phase, doing: str) -> None:
    status = gate_status(rollout, phase)
    if not status.satisfied:
        raise ApplicationError(
            f"Cannot {doing} rollout {rollout.key} yet: " + " ".join(status.blockers),
            field="gates",
            code="promotion" if status.promotion else "gated",
        )
