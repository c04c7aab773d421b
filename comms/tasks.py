"""Celery tasks of notices. Thin: ids in, one service call; idempotent, so acks_late is safe.

Retry policy of deliveries lives here (not in services): transient errors retry with
exponential backoff (2 s, 4 s, 8 s ... capped at 5 min, with jitter), 7 attempts in all.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings

from comms import services
from comms.channels import TransientDeliveryError

DELIVERY_MAX_RETRIES = services.DEFAULT_MAX_ATTEMPTS - 1


@shared_task(
    bind=True,
    name="comms.send_delivery",
    ignore_result=True,
    acks_late=True,
    autoretry_for=(TransientDeliveryError,),
    max_retries=DELIVERY_MAX_RETRIES,
    retry_backoff=services.RETRY_BACKOFF,
    retry_backoff_max=services.RETRY_BACKOFF_MAX,
    retry_jitter=True,
    # Settings, so the stale-delivery sweep can follow them (comms.services.stale_after).
    soft_time_limit=settings.COMMS_SEND_SOFT_TIME_LIMIT,
    time_limit=settings.COMMS_SEND_TIME_LIMIT,
)
def send_delivery(self: Task, delivery_id: int) -> str:
    """Send one delivery (state-checked under a row lock: a duplicate message is a no-op)."""
    return services.delivery_send(delivery_id=delivery_id, max_attempts=(self.max_retries or 0) + 1)


@shared_task(name="comms.dispatch_events", ignore_result=True, acks_late=True)
def dispatch_events(event_ids: list[int]) -> int:
    """The fast path: rollouts' `events_committed` signal, right after the commit. A failing
    event is recorded (and retried by the sweep) without stopping the others."""
    return sum(1 for event_id in event_ids if services.event_dispatch_isolated(event_id=event_id))


@shared_task(name="comms.sweep_events", ignore_result=True)
def sweep_events() -> int:
    """Beat: every rollout event not turned into notices yet (the durable path)."""
    return services.events_dispatch_pending()


@shared_task(name="comms.sweep_notices", ignore_result=True)
def sweep_notices() -> dict[str, int]:
    """Beat: send due scheduled notices, re-queue stuck deliveries, finish notices."""
    result = services.notices_sweep()
    return {
        "notices_sent": result.notices_sent,
        "requeued": result.requeued,
        "finished": result.finished,
    }


@shared_task(name="comms.dispatch_notice", ignore_result=True, acks_late=True)
def dispatch_notice(notice_id: int) -> bool:
    return services.notice_dispatch(notice_id=notice_id)
