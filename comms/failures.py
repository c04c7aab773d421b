"""What comms contributes to the Failures page: rollout events that could not be turned into
notices, and deliveries that are retrying or failed for good. Registered in `CommsConfig`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.urls import reverse

from comms import services
from comms.models import Delivery, EventFailure
from core.exceptions import ApplicationError
from core.failures import DEAD, STUCK, FailureItem

DState = Delivery.State


def _int(key: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise ApplicationError("That item does not exist.", field="key") from None


def _event_item(failure: EventFailure) -> FailureItem:
    event = failure.event
    rollout = event.rollout
    return FailureItem(
        source=EventFailures.name,
        key=str(event.pk),
        kind="Rollout event to notices",
        title=f"{event.get_kind_display()} of rollout {rollout.key}",
        state=DEAD if failure.dead_at else STUCK,
        error=failure.last_error,
        attempts=failure.attempts,
        failed_at=failure.failed_at,
        next_attempt_at=failure.next_attempt_at,
        url=reverse("rollouts:detail", args=[rollout.key]),
    )


class EventFailures:
    name = "comms-event"

    def items(self, *, limit: int) -> list[FailureItem]:
        rows = EventFailure.objects.select_related("event__rollout").filter(
            event__dispatched_at__isnull=True
        )[:limit]
        return [_event_item(f) for f in rows]

    def retry(self, *, key: str, actor: AbstractBaseUser) -> str:
        if not services.event_failure_retry(event_id=_int(key)):
            raise ApplicationError("That event is not failing any more; nothing to retry.")
        return "Trying the event again now; the list shows it again if it still fails."

    def discard(self, *, key: str, actor: AbstractBaseUser, reason: str) -> FailureItem:
        failure = EventFailure.objects.select_related("event__rollout").filter(event_id=_int(key))
        found = failure.first()
        if found is None:
            raise ApplicationError("That event is not failing any more; nothing to discard.")
        item = _event_item(found)
        services.event_failure_discard(event_id=found.event_id)
        return item


def _delivery_item(delivery: Delivery) -> FailureItem:
    to = delivery.channel_name + (f" ({delivery.recipient})" if delivery.recipient else "")
    return FailureItem(
        source=DeliveryFailures.name,
        key=str(delivery.pk),
        kind="Delivery of a notice",
        title=f"{delivery.notice.title} to {to}",
        state=DEAD if delivery.state == DState.FAILED else STUCK,
        error=delivery.last_error or "No error recorded.",
        attempts=delivery.attempts,
        failed_at=delivery.updated_at,
        next_attempt_at=delivery.next_attempt_at,
        url=reverse("comms:notice", args=[delivery.notice_id]),
    )


class DeliveryFailures:
    name = "comms-delivery"

    def items(self, *, limit: int) -> list[FailureItem]:
        rows = (
            Delivery.objects.filter(state__in=(DState.FAILED, DState.RETRYING))
            .select_related("notice__release", "notice__phase", "notice__rollout")
            .order_by("-updated_at", "-id")[:limit]
        )
        return [_delivery_item(d) for d in rows]

    def retry(self, *, key: str, actor: AbstractBaseUser) -> str:
        delivery = Delivery.objects.filter(pk=_int(key)).first()
        if delivery is None:
            raise ApplicationError("That delivery does not exist.")
        services.delivery_retry(delivery=delivery, actor=actor)
        return "Sending the delivery again (same delivery id: receivers drop a copy)."

    @transaction.atomic
    def discard(self, *, key: str, actor: AbstractBaseUser, reason: str) -> FailureItem:
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("notice__release", "notice__phase", "notice__rollout")
            .filter(pk=_int(key), state__in=(DState.FAILED, DState.RETRYING))
            .first()
        )
        if delivery is None:
            raise ApplicationError("That delivery is not failing any more; nothing to discard.")
        item = _delivery_item(delivery)
        who = actor.get_username()
        Delivery.objects.filter(pk=delivery.pk).update(
            state=DState.CANCELLED,
            next_attempt_at=None,
            last_error=f"Discarded by {who}: {reason}\n(was: {delivery.last_error})"[:2000],
        )
        transaction.on_commit(lambda: services.notice_finish(notice_id=delivery.notice_id))
        return item
