"""The scheduler's side: which rollouts the clock may move now (one query) and the sweep that
advances each of them one phase, each step in its own transaction (`rollout_advance`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db.models import Exists, OuterRef, Q

from core.failures import describe_error
from rollouts.models import (
    AdvanceFailure,
    Approval,
    ApprovalPolicy,
    ChecklistItem,
    Phase,
    Rollout,
    RolloutEvent,
)
from rollouts.services.checks import checks_blocking
from rollouts.services.common import _now
from rollouts.services.events import events_batched
from rollouts.services.failures import advance_failures_clear, rollout_advance_failed
from rollouts.services.lifecycle import rollout_advance
from rollouts.services.sweep import SWEEP_CACHE_STEPS, SweepCache

logger = logging.getLogger(__name__)

State = Rollout.State
Source = RolloutEvent.Source


def rollouts_due(*, now: datetime | None = None, limit: int | None = None) -> list[tuple[int, int]]:
    """(rollout id, current phase index) of rollouts the clock may move now, oldest due first.

    Running or scheduled, due (`next_due_at` already waits for freeze windows), the next
    phase's gate is automatic, no approval of it is pending, its checklist is ticked, and a
    scheduled start does not wait for the release in another environment. One query.
    """
    now = _now(now)
    next_order = OuterRef("current_phase_index") + 1
    automatic_next = Phase.objects.filter(
        rollout=OuterRef("pk"), order=next_order, gate=Phase.Gate.AUTOMATIC
    )
    pending_approval = Approval.objects.filter(
        rollout=OuterRef("pk"), phase__order=next_order, state=Approval.State.PENDING
    )
    open_checklist = ChecklistItem.objects.filter(
        phase__rollout=OuterRef("pk"), phase__order=next_order, ticked_at__isnull=True
    )
    completed_there = Rollout.objects.filter(
        release=OuterRef(OuterRef("release")),
        environment=OuterRef("requires_completed_in"),
        state=State.COMPLETED,
    )
    promotion_pending = ApprovalPolicy.objects.filter(
        environment=OuterRef("environment"), requires_completed_in__isnull=False
    ).exclude(Exists(completed_there))
    backing_off = AdvanceFailure.objects.filter(rollout=OuterRef("pk"), retry_at__gt=now)
    qs = (
        Rollout.objects.filter(state__in=(State.RUNNING, State.SCHEDULED), next_due_at__lte=now)
        .filter(Exists(automatic_next))
        .exclude(Exists(pending_approval))
        .exclude(Exists(open_checklist))
        .exclude(Exists(checks_blocking()))  # guarded phase: its checks have not passed yet
        .exclude(Q(state=State.SCHEDULED) & Q(Exists(promotion_pending)))
        .exclude(Exists(backing_off))
        .order_by("next_due_at", "id")
        .values_list("id", "current_phase_index")
    )
    if limit is not None:
        qs = qs[:limit]
    return list(qs)


def rollouts_advance_due(*, now: datetime | None = None, limit: int | None = None) -> int:
    """The sweep body, inline: advance every due rollout one phase. Returns how many moved."""
    return rollouts_advance_steps(steps=rollouts_due(now=now, limit=limit), now=now)


def rollouts_advance_steps(*, steps: Iterable[Sequence[int]], now: datetime | None = None) -> int:
    """Advance each (rollout id, expected phase index) if still due; returns how many moved.

    Each step is its own transaction (`rollout_advance`); consumers hear about the events in
    one batch. Approval policies, windows and the steps' phases are read once per
    `SWEEP_CACHE_STEPS` steps.
    `now` fixes the time (tests); otherwise each step records when it applied.
    """
    moved = 0
    advanced: list[int] = []
    pending = [(int(rollout_id), int(index)) for rollout_id, index in steps]
    with events_batched():
        for start in range(0, len(pending), SWEEP_CACHE_STEPS):
            chunk = pending[start : start + SWEEP_CACHE_STEPS]
            cache = SweepCache(rollout_ids=[rollout_id for rollout_id, _ in chunk])
            for rollout_id, index in chunk:
                try:
                    if rollout_advance(
                        rollout_id=rollout_id,
                        expected_phase_index=index,
                        actor=None,
                        source=Source.SCHEDULER,
                        now=now,
                        cache=cache,
                    ):
                        moved += 1
                        advanced.append(rollout_id)
                except Exception as exc:  # noqa: BLE001 - one failing rollout never stops the batch
                    # A rule now forbids the step (e.g. its segment is gone) or something broke:
                    # recorded, backed off, held after the retry budget; the other rollouts go on.
                    rollout_advance_failed(
                        rollout_id=rollout_id,
                        phase_index=index,
                        error=describe_error(exc),
                        now=now,
                    )
    advance_failures_clear(rollout_ids=advanced)
    return moved
