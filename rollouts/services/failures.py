"""Scheduled steps that fail: recorded per rollout, backed off, then held with the reason.

The sweep advances each due rollout in its own transaction (`scheduler`). When a step raises,
`rollout_advance_failed` records the error and attempt count on an `AdvanceFailure` row and
sets `retry_at` (the sweep skips the rollout until then), so the other rollouts of the batch
and of later ticks go on. After the retry budget (ROLLCALL_RETRY_MAX_ATTEMPTS) the rollout is
held with a "failing" hold whose reason is the error: it shows on the rollout page and on the
Failures page, where an admin retries the step (after fixing the cause) or discards it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from core.exceptions import ApplicationError
from core.failures import retry_budget, retry_delay
from rollouts.models import AdvanceFailure, Hold, Rollout, RolloutEvent
from rollouts.services.common import _lock, _now, _phases
from rollouts.services.holds import _hold, rollout_hold_clear

logger = logging.getLogger(__name__)

State = Rollout.State
Source = RolloutEvent.Source
HOLDABLE = (State.SCHEDULED, State.RUNNING, State.PAUSED, State.HELD)


def _phase_words(rollout: Rollout, index: int) -> str:
    phases = _phases(rollout)
    if 0 <= index < len(phases):
        return f"phase {index + 1} ({phases[index].name})"
    return f"phase {index + 1}"


def rollout_advance_failed(
    *, rollout_id: int, phase_index: int, error: str, now: datetime | None = None
) -> AdvanceFailure | None:
    """Count a failed scheduled step of a rollout (from `phase_index` to the next phase).

    Before the budget is spent the rollout backs off (`retry_at`); then it is held with the
    error as the hold's reason. A failure at another phase than the recorded one starts a new
    count; so does one after a person cleared the failing hold."""
    now = _now(now)
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update(of=("self",)).filter(pk=rollout_id).first()
        if rollout is None:
            return None
        failure = (
            AdvanceFailure.objects.select_for_update(of=("self",))
            .select_related("hold")
            .filter(rollout=rollout)
            .first()
        )
        fresh = (
            failure is None
            or failure.phase_index != phase_index
            or (failure.hold is not None and failure.hold.cleared_at is not None)
        )
        if failure is None:
            failure = AdvanceFailure(rollout=rollout, phase_index=phase_index, failed_at=now)
        if fresh:
            failure.phase_index = phase_index
            failure.attempts = 0
            failure.hold = None
        failure.attempts += 1
        failure.last_error = error[:2000]
        failure.failed_at = now
        failure.retry_at = now + retry_delay(failure.attempts)
        if failure.attempts >= retry_budget() and rollout.state in HOLDABLE:
            failure.retry_at = None
            failure.hold = _hold(
                rollout,
                kind=Hold.Kind.FAILING,
                reason=(
                    f"The scheduler could not start {_phase_words(rollout, phase_index + 1)} "
                    f"after {failure.attempts} attempts: {error}"
                )[:2000],
                source=Source.SCHEDULER,
                actor=None,
                now=now,
            )
        failure.save()
    logger.warning(
        "rollout.advance_failed rollout_id=%s phase=%s attempts=%s held=%s error=%s",
        rollout_id, phase_index + 1, failure.attempts, failure.hold_id is not None, error,
    )  # fmt: skip
    return failure


def advance_failures_clear(*, rollout_ids: Iterable[int]) -> int:
    """The step went through: forget earlier failures of these rollouts (one query)."""
    ids = list(rollout_ids)
    if not ids:
        return 0
    deleted, _ = AdvanceFailure.objects.filter(rollout_id__in=ids).delete()
    return deleted


def advance_failures_open(*, limit: int = 200) -> list[AdvanceFailure]:
    """Failures that still matter: backing off, or held by their failing hold."""
    return list(
        AdvanceFailure.objects.select_related("rollout", "hold")
        .filter(rollout__state__in=HOLDABLE)
        .exclude(hold__isnull=False, hold__cleared_at__isnull=False)
        .order_by("-failed_at", "-id")[:limit]
    )


def _open_failure(rollout_id: int) -> AdvanceFailure:
    failure = (
        AdvanceFailure.objects.select_for_update(of=("self",))
        .select_related("rollout", "hold")
        .filter(rollout_id=rollout_id)
        .first()
    )
    if failure is None or (failure.hold is not None and failure.hold.cleared_at is not None):
        raise ApplicationError("That rollout's scheduled step is not failing any more.")
    return failure


@transaction.atomic
def advance_failure_retry(
    *, rollout_id: int, actor: AbstractBaseUser, now: datetime | None = None
) -> Rollout:
    """A person fixed the cause: the step is tried at the next tick, with a fresh retry
    budget. A rollout held by its failing hold runs again (the hold is cleared by this
    person)."""
    now = _now(now)
    failure = _open_failure(rollout_id)
    rollout = _lock(failure.rollout)
    if failure.hold is not None:
        rollout = rollout_hold_clear(
            hold=failure.hold,
            actor=actor,
            source=Source.UI,
            reason="Retried from the Failures page after the cause was fixed.",
            now=now,
            auto_resume=True,
        )
    failure.delete()  # a fresh budget: the next tick tries the step at once
    logger.info("rollout.advance_retried rollout_id=%s actor=%s", rollout_id, actor.pk)
    return rollout


@transaction.atomic
def advance_failure_discard(
    *, rollout_id: int, actor: AbstractBaseUser, reason: str, now: datetime | None = None
) -> AdvanceFailure:
    """Stop retrying the step: the rollout stays held (or is held now) for a person to decide
    on its page (resume, roll back, cancel); the failure leaves the list."""
    now = _now(now)
    failure = _open_failure(rollout_id)
    rollout = _lock(failure.rollout)
    if failure.hold is None and rollout.state in HOLDABLE:
        _hold(
            rollout,
            kind=Hold.Kind.MANUAL,
            reason=f"Its failing scheduled step was discarded: {reason}"[:2000],
            source=Source.UI,
            actor=actor,
            now=now,
        )
    failure.delete()
    logger.info("rollout.advance_discarded rollout_id=%s actor=%s", rollout_id, actor.pk)
    return failure
