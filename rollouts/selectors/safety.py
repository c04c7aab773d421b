"""The safety facts of a rollout's page (holds, the next phase's gates, windows, the
environment's policy), the approval queue, and the windows and policies settings pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Prefetch, Q
from django.utils import timezone

from flags.models import Environment
from rollouts import scheduling, services
from rollouts import windows as windows_mod
from rollouts.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Phase,
    Rollout,
)
from rollouts.selectors.rows import (
    NextChange,
    RolloutRow,
    _plural,
    duration_in_words,
    relative_in_words,
)

State = Rollout.State


@dataclass
class WindowNote:
    """A window shown next to a rollout or in the calendar, with words for when."""

    window: FreezeWindow
    spec: windows_mod.WindowSpec
    active_until: datetime | None = None  # set when it covers "now"

    @property
    def schedule_words(self) -> str:
        w = self.window
        if w.cron:
            length = duration_in_words(w.duration or timedelta(0))
            return f"cron “{w.cron}” for {length} ({w.timezone})"
        return "one-off"


@dataclass
class SafetyView:
    holds: list[Hold]  # active first, then the latest cleared ones
    approval: Approval | None  # the next phase's live (or last decided) request
    approvals_given: int
    gate: services.GateStatus | None
    checklists: dict[int, list[ChecklistItem]]  # phase id -> its steps
    windows: list[WindowNote]
    block_now: windows_mod.Block | None
    raw_due: datetime | None  # the due time before windows moved it
    policy: ApprovalPolicy | None

    @property
    def active_holds(self) -> list[Hold]:
        return [h for h in self.holds if h.is_active]

    @property
    def cleared_holds(self) -> list[Hold]:
        return [h for h in self.holds if not h.is_active]


HOLD_HISTORY = 10


def _safety(rollout: Rollout, phases: list[Phase], now: datetime) -> SafetyView:
    """Safety facts of one rollout in a constant number of queries (holds, approvals with
    their decisions, checklists, windows, the policy; one more for promotion)."""
    holds = list(
        Hold.objects.filter(rollout=rollout)
        .select_related("created_by", "cleared_by")
        .order_by(F("cleared_at").desc(nulls_first=True), "-held_at", "-id")[: HOLD_HISTORY + 20]
    )
    active = [h for h in holds if h.is_active]
    holds = active + [h for h in holds if not h.is_active][:HOLD_HISTORY]
    index = rollout.current_phase_index + 1
    upcoming = (
        phases[index]
        if rollout.state not in Rollout.FINAL_STATES and 0 <= index < len(phases)
        else None
    )
    items = list(
        ChecklistItem.objects.filter(phase__rollout=rollout)
        .select_related("ticked_by")
        .order_by("phase__order", "position", "id")
    )
    checklists: dict[int, list[ChecklistItem]] = {}
    for item in items:
        checklists.setdefault(item.phase_id, []).append(item)
    policy = services.environment_policy(rollout.environment_id)
    approval: Approval | None = None
    given = 0
    gate = None
    if upcoming is not None:
        approval = (
            Approval.objects.filter(phase=upcoming)
            .exclude(state=Approval.State.CANCELLED)
            .select_related("requested_by")
            .prefetch_related(
                Prefetch("decisions", queryset=ApprovalDecision.objects.select_related("user"))
            )
            .order_by("-requested_at", "-id")
            .first()
        )
        if approval is not None:
            given = sum(1 for d in approval.decisions.all() if d.decision == "approve")
        rule = services.approval_rule(upcoming, policy)
        live = (
            approval if approval is not None and approval.state in ("pending", "approved") else None
        )
        open_items = [i for i in checklists.get(upcoming.id, []) if not i.is_ticked]
        promotion = services.promotion_blocker(rollout, policy) if upcoming.order == 0 else None
        gate = services.GateStatus(
            upcoming,
            rule,
            live,
            given if live is None or live.state == "pending" else live.required,
            open_items,
            promotion,
        )
    windows = list(
        FreezeWindow.objects.filter(is_active=True)
        .filter(Q(environment_id=rollout.environment_id) | Q(environment__isnull=True))
        .select_related("environment")
        .order_by("kind", "name", "id")
    )
    notes = [WindowNote(w, services.window_spec(w)) for w in windows]
    specs = [n.spec for n in notes]
    for note in notes:
        occ = windows_mod.occurrence_at(note.spec, now)
        if occ is not None:
            note.active_until = occ[1]
    raw_due = scheduling.next_due_at(rollout, phases)
    return SafetyView(
        holds=holds,
        approval=approval,
        approvals_given=given,
        gate=gate,
        checklists=checklists,
        windows=notes,
        block_now=windows_mod.blocking(now, specs),
        raw_due=raw_due,
        policy=policy,
    )


def gated_next_change(row: RolloutRow, safety: SafetyView, now: datetime) -> NextChange:
    """The next change in words, saying what it waits for: holds, approvals, checklists,
    the release elsewhere, or the next allowed moment of a window."""
    change = row.next_change
    rollout = row.rollout
    if rollout.state == State.HELD and safety.active_holds:
        n = len(safety.active_holds)
        words = f"held by {_plural(n, 'active hold')}: waits for a person to clear or resume"
        return NextChange("held", words, None, change.phase)
    if rollout.state not in (State.RUNNING, State.SCHEDULED) or safety.gate is None:
        return change
    waits = []
    gate = safety.gate
    if gate.promotion:
        waits.append(gate.promotion)
    if not gate.approved and gate.rule is not None:
        if gate.approval is None:
            waits.append("needs approval (not requested yet)")
        else:
            waits.append(f"waits for approval ({gate.approvals_given} of {gate.approval.required})")
    if gate.open_items:
        waits.append(f"waits for {_plural(len(gate.open_items), 'checklist step')}")
    words = change.words
    due = rollout.next_due_at
    if due is not None and safety.raw_due is not None and due > safety.raw_due and due > now:
        blocker = windows_mod.blocking(safety.raw_due, [n.spec for n in safety.windows])
        why = blocker.words if blocker else "a window"
        words = f"{relative_in_words(due, now)}, the next allowed moment ({why})"
    if waits:
        words = f"{words}; " + "; ".join(waits)
        return NextChange("gated", words, due, change.phase)
    return NextChange(change.kind, words, change.at, change.phase)


def approval_queue(*, user: Any, limit: int = 100) -> list[Approval]:
    """Pending approvals this person may decide: not their own request (unless the policy
    allows it), not decided by them yet. Constant queries."""
    if not user.has_perm("rollouts.approve_rollout"):
        return []
    qs = (
        Approval.objects.filter(
            state=Approval.State.PENDING, rollout__state__in=(*Rollout.ACTIVE_STATES, State.DRAFT)
        )
        .select_related(
            "rollout__release",
            "rollout__environment",
            "rollout__flag",
            "phase__segment",
            "requested_by",
        )
        .prefetch_related(
            Prefetch("decisions", queryset=ApprovalDecision.objects.select_related("user")),
            Prefetch("phase__checklist", queryset=ChecklistItem.objects.order_by("position", "id")),
        )
        .order_by("requested_at", "id")
    )
    result = []
    for approval in qs[: limit * 2]:
        decided = {d.user_id for d in approval.decisions.all()}
        if user.pk in decided:
            continue
        if approval.requested_by_id == user.pk and not approval.allow_self_approval:
            continue
        approval.given = sum(1 for d in approval.decisions.all() if d.decision == "approve")  # type: ignore[attr-defined]
        result.append(approval)
        if len(result) >= limit:
            break
    return result


def window_list() -> list[WindowNote]:
    now = timezone.now()
    notes = []
    for w in FreezeWindow.objects.select_related("environment").order_by("kind", "name", "id"):
        note = WindowNote(w, services.window_spec(w))
        occ = windows_mod.occurrence_at(note.spec, now)
        note.active_until = occ[1] if occ else None
        notes.append(note)
    return notes


@dataclass
class PolicyRow:
    environment: Environment
    policy: ApprovalPolicy | None


def policy_rows() -> list[PolicyRow]:
    policies = {
        p.environment_id: p for p in ApprovalPolicy.objects.select_related("requires_completed_in")
    }
    return [PolicyRow(e, policies.get(e.id)) for e in Environment.objects.order_by("order", "key")]
