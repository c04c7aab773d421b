"""The outbox: deliveries of notices, one per channel and recipient.

Owns publishing the send tasks after commit, sending one delivery (`delivery_send`: marks it
"sending", attempt + 1, under a row lock and commits before the network call; a delivery is
sent only from "queued" or "retrying"), recording outcomes, finishing the notice once no
delivery is unfinished, retries by a person, and the sweep of stuck deliveries: if a worker
dies mid-send, the delivery is queued again after COMMS_DELIVERY_STALE_SECONDS and sent with
the same idempotency id, which receivers de-duplicate (X-Rollcall-Delivery, Message-ID).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F

from comms import channels as senders
from comms.models import Delivery, Notice
from comms.services._common import _lock_notice, _now
from core.exceptions import ApplicationError
from core.queue import enqueue_many_on_commit

logger = logging.getLogger(__name__)

State = Notice.State
DState = Delivery.State

# The Celery task that sends one delivery (comms.tasks.send_delivery), enqueued by name.
SEND_DELIVERY_TASK = "comms.send_delivery"
DEFAULT_MAX_ATTEMPTS = 7
# Celery's retry_backoff: factor * 2 ** retries, capped (mirrored for "next attempt by").
RETRY_BACKOFF = 2
RETRY_BACKOFF_MAX = 300
MAX_ERROR = 2000


def send_time_limits() -> tuple[int, int]:
    """(soft, hard) seconds one send may take: the soft limit raises inside the send (the
    attempt fails and is retried), the hard one kills the worker process (prefork pool)."""
    hard = int(getattr(settings, "COMMS_SEND_TIME_LIMIT", 60))
    soft = int(getattr(settings, "COMMS_SEND_SOFT_TIME_LIMIT", 45))
    return min(soft, hard), hard


def stale_after() -> timedelta:
    """A delivery "sending" for longer than this was interrupted (its worker died).

    Never shorter than the hard time limit of a send: until then the attempt may still be
    running, and sending it again would race it."""
    configured = int(getattr(settings, "COMMS_DELIVERY_STALE_SECONDS", 120))
    return timedelta(seconds=max(configured, send_time_limits()[1] + 1))


def requeue_after() -> timedelta:
    """A queued delivery whose task has not run for this long lost its message."""
    return timedelta(seconds=getattr(settings, "COMMS_DELIVERY_REQUEUE_SECONDS", 600))


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BACKOFF_MAX, RETRY_BACKOFF * 2 ** max(attempts - 1, 0)))


def deliveries_enqueue_on_commit(delivery_ids: Sequence[int]) -> None:
    """Publish one send task per delivery after commit, over one broker connection. A broker
    that is down only delays them: the sweep re-queues deliveries whose message was lost."""
    count = len(delivery_ids)

    def failed(exc: Exception) -> None:
        logger.error(
            "delivery.enqueue_failed count=%s (the sweep re-queues them)", count, exc_info=exc
        )

    enqueue_many_on_commit(SEND_DELIVERY_TASK, [(i,) for i in delivery_ids], on_error=failed)


def _finish_delivery(
    delivery_id: int,
    attempt: int,
    *,
    state: str,
    error: str = "",
    status: int | None = None,
    next_attempt_at: datetime | None = None,
    now: datetime,
) -> bool:
    """Record an attempt's outcome, only if this attempt still owns the delivery."""
    fields: dict[str, Any] = {
        "state": state,
        "response_code": status,
        "next_attempt_at": next_attempt_at,
        "updated_at": now,
    }
    if error:
        fields["last_error"] = error[:MAX_ERROR]
    if state == DState.SENT:
        fields["sent_at"] = now
    updated = Delivery.objects.filter(
        pk=delivery_id, state=DState.SENDING, attempts=attempt
    ).update(**fields)
    return bool(updated)


def _attempt_failed(
    delivery: Delivery,
    attempt: int,
    *,
    error: str,
    status: int | None,
    cause: Exception,
    max_attempts: int,
    now: datetime | None,
) -> str:
    last = attempt >= max_attempts
    when = _now(now)
    _finish_delivery(
        delivery.id,
        attempt,
        state=DState.FAILED if last else DState.RETRYING,
        error=f"Gave up after {attempt} attempts: {error}" if last else error,
        status=status,
        next_attempt_at=None if last else when + retry_delay(attempt),
        now=when,
    )
    if last:
        logger.warning("delivery.failed delivery_id=%s attempts=%s", delivery.id, attempt)
        notice_finish(notice_id=delivery.notice_id, now=now)
        return DState.FAILED
    logger.info("delivery.retrying delivery_id=%s attempt=%s error=%s", delivery.id, attempt, error)
    raise senders.TransientDeliveryError(error, status=status) from cause


def _describe(exc: Exception) -> str:
    if type(exc).__name__ == "SoftTimeLimitExceeded":  # Celery's soft time limit (billiard)
        return (
            f"The send took longer than {send_time_limits()[0]} seconds and was cut off; it is "
            "tried again with the same delivery id."
        )
    return f"{type(exc).__name__}: {exc}"


def delivery_send(
    *,
    delivery_id: int,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> str:
    """Send one delivery once. Returns its state afterwards.

    Raises TransientDeliveryError when the attempt failed and another one is allowed (the
    Celery task retries with backoff); permanent failures and the last attempt end "failed".
    """
    started = _now(now)
    delivery = (
        Delivery.objects.select_related("notice", "notice__audience", "channel")
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None:
        return "missing"
    if delivery.state not in Delivery.SENDABLE_STATES:
        # Sent, failed, cancelled, or another attempt is in flight: nothing to do.
        return delivery.state
    channel = delivery.channel
    if channel is None or not channel.is_enabled:
        cancelled = Delivery.objects.filter(
            pk=delivery_id, state__in=Delivery.SENDABLE_STATES
        ).update(
            state=DState.CANCELLED,
            last_error="The channel was disabled or removed before sending.",
            updated_at=started,
        )
        if cancelled:
            notice_finish(notice_id=delivery.notice_id, now=now)
        return DState.CANCELLED
    # Claim the attempt: one conditional UPDATE takes the row lock, checks the state and
    # counts the attempt atomically; whoever updates no row lost the race and sends nothing.
    claimed = Delivery.objects.filter(
        pk=delivery_id, state=delivery.state, attempts=delivery.attempts
    ).update(
        state=DState.SENDING, attempts=F("attempts") + 1, started_at=started, updated_at=started
    )
    if not claimed:
        return Delivery.objects.values_list("state", flat=True).get(pk=delivery_id)
    delivery.attempts += 1
    attempt = delivery.attempts
    # The row is committed as "sending" before anything leaves: a worker that dies from here
    # on leaves a trace the sweep finds, and the resend carries the same idempotency id.
    try:
        # Building the message is inside: a notice that cannot be turned into this channel's
        # message fails this delivery (recorded, retried, then dead), not the worker.
        message = senders.message_for(delivery=delivery, notice=delivery.notice, channel=channel)
        result = senders.send(message)
    except senders.PermanentDeliveryError as exc:
        _finish_delivery(
            delivery_id, attempt, state=DState.FAILED, error=exc.message, status=exc.status,
            now=_now(now),
        )  # fmt: skip
        logger.warning("delivery.failed delivery_id=%s error=%s", delivery_id, exc.message)
        notice_finish(notice_id=delivery.notice_id, now=now)
        return DState.FAILED
    except senders.TransientDeliveryError as exc:
        return _attempt_failed(
            delivery, attempt, error=exc.message, status=exc.status, cause=exc,
            max_attempts=max_attempts, now=now,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any other error is worth another try
        return _attempt_failed(
            delivery, attempt, error=_describe(exc), status=None, cause=exc,
            max_attempts=max_attempts, now=now,
        )  # fmt: skip
    _finish_delivery(delivery_id, attempt, state=DState.SENT, status=result.status, now=_now(now))
    logger.info(
        "delivery.sent delivery_id=%s notice_id=%s attempt=%s",
        delivery_id, delivery.notice_id, attempt,
    )  # fmt: skip
    notice_finish(notice_id=delivery.notice_id, now=now)
    return DState.SENT


def notice_finish(*, notice_id: int, now: datetime | None = None) -> str | None:
    """Once no delivery is unfinished, the notice is sent, partially failed or failed.

    Checked after each delivery's outcome is committed, so the last one to finish always
    sees all the others (and the sweep repeats it for safety)."""
    if Delivery.objects.filter(notice_id=notice_id, state__in=Delivery.UNFINISHED_STATES).exists():
        return None
    now = _now(now)
    with transaction.atomic():
        notice = Notice.objects.select_for_update().filter(pk=notice_id).first()
        if notice is None or notice.state != State.SENDING:
            return None
        counts = dict(
            notice.deliveries.values("state").annotate(n=Count("id")).values_list("state", "n")
        )
        sent, failed = counts.get(DState.SENT, 0), counts.get(DState.FAILED, 0)
        if sent and not failed:
            notice.state = State.SENT
            notice.state_note = ""
        elif sent:
            notice.state = State.PARTIALLY_FAILED
            notice.state_note = f"{failed} of {sent + failed} deliveries failed; retry them below."
        else:
            notice.state = State.FAILED
            notice.state_note = "No delivery succeeded; see the errors and retry."
        notice.finished_at = now
        notice.save(update_fields=["state", "state_note", "finished_at", "updated_at"])
    logger.info("notice.%s notice_id=%s sent=%s failed=%s", notice.state, notice_id, sent, failed)
    return notice.state


def _retry(deliveries: Any, *, now: datetime) -> list[int]:
    ids = list(deliveries.filter(state=DState.FAILED).values_list("id", flat=True))
    if ids:
        Delivery.objects.filter(id__in=ids).update(
            state=DState.QUEUED, attempts=0, next_attempt_at=None, enqueued_at=now, updated_at=now
        )
    return ids


def _reopen(notice: Notice, now: datetime) -> None:
    notice.state = State.SENDING
    notice.state_note = ""
    notice.finished_at = None
    notice.save(update_fields=["state", "state_note", "finished_at", "updated_at"])


@transaction.atomic
def delivery_retry(
    *, delivery: Delivery, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Delivery:
    """Try a failed delivery again (same idempotency id: a receiver that got it already
    ignores the copy)."""
    now = _now(now)
    notice = _lock_notice(delivery.notice)
    delivery = Delivery.objects.select_for_update().get(pk=delivery.pk)
    if delivery.state != DState.FAILED:
        raise ApplicationError(
            f"Only failed deliveries can be retried; this one is "
            f"{delivery.get_state_display().lower()}.",
            field="state",
        )
    ids = _retry(Delivery.objects.filter(pk=delivery.pk), now=now)
    _reopen(notice, now)
    deliveries_enqueue_on_commit(ids)
    logger.info("delivery.retried delivery_id=%s actor=%s", delivery.id, getattr(actor, "pk", None))
    delivery.refresh_from_db()
    return delivery


@transaction.atomic
def notice_retry(
    *, notice: Notice, actor: AbstractBaseUser | None, now: datetime | None = None
) -> int:
    """Retry every failed delivery of a notice; returns how many."""
    now = _now(now)
    notice = _lock_notice(notice)
    if notice.state not in (State.FAILED, State.PARTIALLY_FAILED):
        raise ApplicationError("Only notices with failed deliveries can be retried.", field="state")
    ids = _retry(notice.deliveries.all(), now=now)
    if not ids:
        raise ApplicationError(
            "This notice has no delivery to retry (its audience had no channel); write a new "
            "notice once a channel is set up.",
            field="state",
        )
    _reopen(notice, now)
    deliveries_enqueue_on_commit(ids)
    logger.info("notice.retried notice_id=%s deliveries=%s", notice.id, len(ids))
    return len(ids)


def deliveries_requeue_stuck(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Queue again what a dead worker or a lost message left behind:
    "sending" past the stale limit (interrupted mid-send), "queued" past the re-queue limit
    (message lost), "retrying" well past its next attempt (retry message lost)."""
    now = _now(now)
    grace = requeue_after()
    with transaction.atomic():
        interrupted = list(
            Delivery.objects.filter(state=DState.SENDING, started_at__lt=now - stale_after())
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        lost = list(
            Delivery.objects.filter(state=DState.QUEUED, enqueued_at__lt=now - grace)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        late = list(
            Delivery.objects.filter(state=DState.RETRYING, next_attempt_at__lt=now - grace)
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if interrupted:
            Delivery.objects.filter(id__in=interrupted).update(
                state=DState.QUEUED,
                enqueued_at=now,
                updated_at=now,
                last_error=(
                    "An attempt was interrupted (its worker stopped while sending); sent again "
                    "with the same delivery id, which receivers de-duplicate."
                ),
            )
        if lost or late:
            Delivery.objects.filter(id__in=lost + late).update(
                state=DState.QUEUED, enqueued_at=now, updated_at=now
            )
        ids = interrupted + lost + late
        deliveries_enqueue_on_commit(ids)
    if ids:
        logger.warning(
            "delivery.requeued interrupted=%s lost=%s late=%s",
            len(interrupted), len(lost), len(late),
        )  # fmt: skip
    return len(ids)


def notices_finish_stale(*, now: datetime | None = None, limit: int = 200) -> int:
    """Notices left "sending" although every delivery finished (belt and braces)."""
    ids = list(
        Notice.objects.filter(state=State.SENDING)
        .exclude(deliveries__state__in=Delivery.UNFINISHED_STATES)
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for notice_id in ids if notice_finish(notice_id=notice_id, now=now))
