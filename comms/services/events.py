"""Rollout events -> notices, and the beat sweeps of notices.

A rollout transition writes a RolloutEvent (rollouts.services). `event_dispatch` turns it into
notices per the rollout's communication plan, once (the event row is locked and marked
`dispatched_at` in the same transaction; notices have a unique `dedupe_key`). It runs from
the fast path (rollouts' `events_committed` signal -> Celery task) and from a beat sweep over
undispatched events (`events_dispatch_pending`), so no event is lost when a worker was down.
`notices_sweep` is the other beat sweep: due notices, stuck deliveries, unfinished notices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from comms import selectors
from comms.models import Audience, CommunicationPlan, EventFailure, Notice, NoticeEvent, PlanRule
from comms.services._common import _now
from comms.services.notices import _cancel_notices, _dispatch, notices_send_due
from comms.services.outbox import deliveries_requeue_stuck, notices_finish_stale
from comms.services.plans import _new_plan_notice, _plan_locked, rollout_notices_sync
from core.failures import describe_error, retry_budget, retry_delay
from core.queue import enqueue_on_commit
from rollouts.models import Phase, Rollout, RolloutEvent

logger = logging.getLogger(__name__)

State = Notice.State
Kind = RolloutEvent.Kind

# Which rollout events make which notices. STARTED is followed by ADVANCED (phase 1) in the
# same transaction, so the phase notice comes from that one.
EVENT_NOTICES: dict[str, str] = {
    Kind.SCHEDULED: NoticeEvent.SCHEDULED,
    Kind.ADVANCED: NoticeEvent.PHASE_STARTED,
    Kind.PAUSED: NoticeEvent.HELD,
    Kind.HELD: NoticeEvent.HELD,
    Kind.RESUMED: NoticeEvent.RESUMED,
    Kind.HOLD_CLEARED: NoticeEvent.RESUMED,
    Kind.ROLLED_BACK: NoticeEvent.ROLLED_BACK,
    Kind.COMPLETED: NoticeEvent.COMPLETED,
}
FINAL_ROLLOUT_KINDS = (Kind.ROLLED_BACK, Kind.CANCELLED)
# The fast-path task (comms.tasks.dispatch_events), enqueued by name for a retry.
DISPATCH_EVENTS_TASK = "comms.dispatch_events"


def _event_phase(event: RolloutEvent, rollout: Rollout, phases: list[Phase]) -> Phase | None:
    if event.kind == Kind.ADVANCED:
        index = event.to_phase_index
    elif event.kind == Kind.SCHEDULED:
        index = 0
    elif event.kind == Kind.ROLLED_BACK:
        index = event.from_phase_index
    elif event.to_phase_index is not None:
        index = event.to_phase_index
    else:
        index = rollout.current_phase_index
    if index is None or not 0 <= index < len(phases):
        return None
    return phases[index]


def _event_notices(
    event: RolloutEvent,
    rollout: Rollout,
    plan: CommunicationPlan,
    phases: list[Phase],
    now: datetime,
) -> list[Notice]:
    kind = EVENT_NOTICES.get(event.kind)
    if kind is None:
        return []
    if event.kind == Kind.HOLD_CLEARED and (event.data or {}).get("to_state", "running") != (
        Rollout.State.RUNNING
    ):
        # The hold is gone but the rollout stays paused for a person: nothing resumed yet.
        return []
    phase = _event_phase(event, rollout, phases)
    rules = [
        r
        for r in plan.rules.select_related("audience", "template").order_by("id")
        if r.is_enabled and r.event == kind and selectors.rule_matches_phase(r, phase)
    ]
    chosen: dict[int, tuple[Audience, PlanRule | None, Notice | None]] = {}
    for rule in rules:
        chosen.setdefault(rule.audience_id, (rule.audience, rule, None))
    if kind == NoticeEvent.ROLLED_BACK:
        # Everyone who heard about this rollout gets a correction, planned or not.
        heard = (
            Notice.objects.filter(
                rollout=rollout,
                state__in=(State.SENT, State.PARTIALLY_FAILED, State.SENDING),
            )
            .exclude(event=NoticeEvent.ROLLED_BACK)
            .select_related("audience")
            .order_by("created_at", "id")
        )
        for told in heard:
            audience, planned, _ = chosen.get(told.audience_id, (told.audience, None, None))
            chosen[told.audience_id] = (audience, planned, told)
    created = []
    for audience, planned, corrects in chosen.values():
        notice = _new_plan_notice(
            rollout=rollout,
            audience=audience,
            event=kind,
            rule=planned,
            dedupe_key=f"event:{event.id}:{audience.id}",
            send_at=now,
            phase=phase,
            rollout_event=event,
            reason=event.reason,
            corrects=corrects,
        )
        if notice is not None:
            created.append(notice)
    return created


def _event_handle(event: RolloutEvent, now: datetime) -> list[Notice]:
    rollout = Rollout.objects.select_related("release").get(pk=event.rollout_id)
    plan = _plan_locked(rollout)
    phases = list(rollout.phases.select_related("segment").order_by("order"))
    if event.kind in FINAL_ROLLOUT_KINDS:
        what = "rolled back" if event.kind == Kind.ROLLED_BACK else "cancelled"
        _cancel_notices(
            Notice.objects.filter(rollout=rollout, state__in=Notice.EDITABLE_STATES),
            note=f"Cancelled: the rollout was {what}.",
        )
    created = _event_notices(event, rollout, plan, phases, now)
    for notice in created:
        _dispatch(notice, now=now)
    rollout_notices_sync(rollout=rollout, now=now)
    return created


def event_dispatch(*, event_id: int, now: datetime | None = None) -> bool:
    """Turn one rollout event into notices, once. False when it was handled already or is
    being handled by someone else right now (its row is locked)."""
    now = _now(now)
    with transaction.atomic():
        event = (
            RolloutEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=event_id, dispatched_at__isnull=True)
            .first()
        )
        if event is None:
            return False
        created = _event_handle(event, now)
        event.dispatched_at = now
        event.save(update_fields=["dispatched_at"])
        EventFailure.objects.filter(event_id=event.id).delete()  # it failed before: now it's done
    logger.info(
        "event.dispatched event_id=%s rollout_id=%s kind=%s notices=%s",
        event.id, event.rollout_id, event.kind, len(created),
    )  # fmt: skip
    return True


def event_failure_record(*, event_id: int, error: str, now: datetime | None = None) -> EventFailure:
    """Count a failed attempt at an event: it backs off, and after the retry budget it is dead
    (listed on the Failures page) instead of being tried on every sweep."""
    now = _now(now)
    with transaction.atomic():
        failure = EventFailure.objects.select_for_update().filter(event_id=event_id).first()
        if failure is None:
            failure = EventFailure(event_id=event_id, attempts=0, failed_at=now)
        failure.attempts += 1
        failure.last_error = error[:2000]
        failure.failed_at = now
        if failure.attempts >= retry_budget():
            failure.dead_at = now
            failure.next_attempt_at = None
        else:
            failure.next_attempt_at = now + retry_delay(failure.attempts)
        failure.save()
    logger.warning(
        "event.dispatch_failed event_id=%s attempts=%s dead=%s error=%s",
        event_id, failure.attempts, failure.dead_at is not None, error,
    )  # fmt: skip
    return failure


def event_dispatch_isolated(*, event_id: int, now: datetime | None = None) -> bool:
    """`event_dispatch` for batches: an event that fails is recorded (error, attempt, backoff)
    and the caller goes on with the next one."""
    try:
        return event_dispatch(event_id=event_id, now=now)
    except Exception as exc:  # noqa: BLE001 - one poison event must not stop the batch
        event_failure_record(event_id=event_id, error=describe_error(exc), now=now)
        return False


def events_dispatch_pending(*, now: datetime | None = None, limit: int = 500) -> int:
    """The sweep: every event not dispatched yet, oldest first, except failed ones that are
    backing off or dead (so a poison event never blocks the line). Returns how many."""
    now = _now(now)
    ids = list(
        RolloutEvent.objects.filter(dispatched_at__isnull=True)
        .exclude(
            Q(comms_failure__dead_at__isnull=False) | Q(comms_failure__next_attempt_at__gt=now)
        )
        .order_by("at", "id")
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for event_id in ids if event_dispatch_isolated(event_id=event_id, now=now))


@dataclass(frozen=True)
class SweepResult:
    notices_sent: int
    requeued: int
    finished: int


def notices_sweep(*, now: datetime | None = None) -> SweepResult:
    """The beat sweep of notices: due notices, stuck deliveries, unfinished notices."""
    now = _now(now)
    return SweepResult(
        notices_sent=notices_send_due(now=now),
        requeued=deliveries_requeue_stuck(now=now),
        finished=notices_finish_stale(now=now),
    )


def event_failure_retry(*, event_id: int, now: datetime | None = None) -> bool:
    """A person fixed the cause: try a failed (or dead) event again now, in a worker. The
    failure row keeps its count; success removes it, another failure makes it dead again."""
    now = _now(now)
    with transaction.atomic():
        failure = (
            EventFailure.objects.select_for_update()
            .select_related("event")
            .filter(event_id=event_id, event__dispatched_at__isnull=True)
            .first()
        )
        if failure is None:
            return False
        failure.dead_at = None
        failure.next_attempt_at = None
        failure.save(update_fields=["dead_at", "next_attempt_at", "updated_at"])
        enqueue_on_commit(DISPATCH_EVENTS_TASK, [event_id])
    logger.info("event.retried event_id=%s", event_id)
    return True


def event_failure_discard(*, event_id: int, now: datetime | None = None) -> EventFailure | None:
    """Give up on a failed event: it is marked handled (no notices) and leaves the list.
    Returns the failure as it was (its error goes into the record of who discarded it)."""
    now = _now(now)
    with transaction.atomic():
        failure = (
            EventFailure.objects.select_for_update()
            .select_related("event")
            .filter(event_id=event_id)
            .first()
        )
        if failure is None:
            return None
        RolloutEvent.objects.filter(pk=event_id, dispatched_at__isnull=True).update(
            dispatched_at=now
        )
        failure.delete()
    logger.info("event.discarded event_id=%s", event_id)
    return failure
