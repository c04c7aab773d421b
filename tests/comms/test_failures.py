"""Poison items in comms: an event whose notices cannot be prepared never blocks later events
(recorded, backed off, dead after the budget, retried after the fix); a delivery whose message
cannot be built fails itself, not the worker; a hung send's error says it was cut off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comms import channels, services, tasks
from comms.failures import DeliveryFailures, EventFailures
from comms.models import Delivery, EventFailure, Notice, NoticeTemplate, PlanRule
from comms.services import outbox
from core.failures import DEAD, STUCK
from rollouts.models import RolloutEvent
from tests.comms.factories import DeliveryFactory, NoticeFactory, started_rollout

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
Kind = RolloutEvent.Kind


@pytest.fixture(autouse=True)
def budget(settings):
    settings.ROLLCALL_RETRY_MAX_ATTEMPTS = 2
    settings.ROLLCALL_RETRY_BACKOFF_SECONDS = 60


@pytest.fixture
def audiences():
    from tests.comms.factories import standard_audiences

    return standard_audiences()


def poisoned_rollout(now: datetime):
    """A rollout whose plan uses a template saved without validation (through the Django
    admin, say): its "phase started" notices cannot be rendered."""
    from tests.comms.factories import make_rollout, phase

    rollout = make_rollout(phases=[phase("10%", 10), phase("100%", 100, soak=timedelta(hours=1))])
    plan = services.plan_ensure(rollout=rollout)
    broken = NoticeTemplate.objects.create(
        name="Broken", event="phase_started", subject="{{ rollout.nonsense }}", body="x"
    )
    PlanRule.objects.filter(plan=plan).update(template=broken)
    from rollouts import services as rollout_services

    rollout_services.rollout_start(
        rollout=rollout, actor=None, source=RolloutEvent.Source.UI, now=now
    )
    return rollout, broken


def advanced_event(rollout) -> RolloutEvent:
    return rollout.events.get(kind=Kind.ADVANCED)


def test_events_sweep__poison_event_oldest__later_events_dispatched_poison_recorded(audiences):
    poison, _ = poisoned_rollout(T0)
    good = started_rollout(10, 100, now=T0 + SEC)

    services.events_dispatch_pending(now=T0 + 2 * SEC)

    assert not good.events.filter(dispatched_at__isnull=True).exists()
    assert Notice.objects.filter(rollout=good).exists()
    failure = EventFailure.objects.get()
    assert failure.event == advanced_event(poison)
    assert failure.attempts == 1
    assert "nonsense" in failure.last_error
    assert failure.next_attempt_at == T0 + 2 * SEC + timedelta(seconds=60)
    assert failure.dead_at is None
    # nothing half-made: the event's transaction was rolled back
    assert not Notice.objects.filter(rollout_event=advanced_event(poison)).exists()


def test_events_sweep__failed_event__skipped_while_backing_off_then_dead(audiences):
    poisoned_rollout(T0)
    services.events_dispatch_pending(now=T0)

    services.events_dispatch_pending(now=T0 + 59 * SEC)
    assert EventFailure.objects.get().attempts == 1  # not tried during its backoff

    services.events_dispatch_pending(now=T0 + 60 * SEC)
    failure = EventFailure.objects.get()
    assert failure.attempts == 2
    assert failure.dead_at == T0 + 60 * SEC  # budget (2) spent: dead letter

    services.events_dispatch_pending(now=T0 + 3600 * SEC)
    assert EventFailure.objects.get().attempts == 2  # the dead are left for a person


def test_event_failure_retry__cause_fixed__notices_made_and_failure_gone(audiences):
    poison, broken = poisoned_rollout(T0)
    services.events_dispatch_pending(now=T0)
    services.events_dispatch_pending(now=T0 + 60 * SEC)
    event = advanced_event(poison)
    NoticeTemplate.objects.filter(pk=broken.pk).update(subject="{{ rollout.key }} started")

    assert services.event_failure_retry(event_id=event.id) is True
    # The worker's part (the retry enqueues comms.dispatch_events for this event):
    assert tasks.dispatch_events([event.id]) == 1

    assert not EventFailure.objects.exists()
    assert Notice.objects.filter(rollout=poison, rollout_event=event).exists()


def test_event_failure_discard__marked_handled__never_tried_again(audiences):
    poison, _ = poisoned_rollout(T0)
    services.events_dispatch_pending(now=T0)
    event = advanced_event(poison)

    services.event_failure_discard(event_id=event.id, now=T0)

    event.refresh_from_db()
    assert event.dispatched_at == T0
    assert not EventFailure.objects.exists()


def test_dispatch_events_task__poison_among_good__others_dispatched(audiences):
    poison, _ = poisoned_rollout(T0)
    good = started_rollout(10, 100, now=T0)
    RolloutEvent.objects.update(dispatched_at=None)
    ids = [advanced_event(poison).id, *good.events.values_list("id", flat=True)]

    handled = tasks.dispatch_events(ids)

    assert handled == len(ids) - 1
    assert EventFailure.objects.get().event_id == ids[0]


def test_failure_source__events__stuck_then_dead_with_error(audiences):
    poison, _ = poisoned_rollout(T0)
    services.events_dispatch_pending(now=T0)
    [item] = EventFailures().items(limit=10)
    assert (item.state, item.attempts) == (STUCK, 1)
    assert item.title == f"Phase started of rollout {poison.key}"
    services.events_dispatch_pending(now=T0 + 60 * SEC)
    [item] = EventFailures().items(limit=10)
    assert item.state == DEAD
    assert "nonsense" in item.error


def test_delivery_send__message_cannot_be_built__attempt_fails_not_the_worker(monkeypatch):
    notice = NoticeFactory(state=Notice.State.SENDING)
    delivery = DeliveryFactory(notice=notice)

    def broken(**kwargs):
        raise KeyError("context")

    monkeypatch.setattr(channels, "message_for", broken)

    state = services.delivery_send(delivery_id=delivery.id, max_attempts=1, now=T0)

    delivery.refresh_from_db()
    assert state == Delivery.State.FAILED
    assert "KeyError" in delivery.last_error
    [item] = DeliveryFailures().items(limit=10)
    assert item.state == DEAD and item.key == str(delivery.id)


def test_delivery_send__cut_off_by_soft_time_limit__retrying_with_plain_reason(
    monkeypatch, settings
):
    from billiard.exceptions import SoftTimeLimitExceeded

    settings.COMMS_SEND_SOFT_TIME_LIMIT = 7
    delivery = DeliveryFactory(notice=NoticeFactory(state=Notice.State.SENDING))

    def hangs(message):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(channels, "send", hangs)

    with pytest.raises(channels.TransientDeliveryError):
        services.delivery_send(delivery_id=delivery.id, max_attempts=3, now=T0)

    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.RETRYING
    assert delivery.last_error.startswith("The send took longer than 7 seconds and was cut off")


def test_stale_after__follows_the_send_time_limit(settings):
    settings.COMMS_SEND_TIME_LIMIT = 90
    settings.COMMS_DELIVERY_STALE_SECONDS = 10  # would re-send a send that may still run
    assert outbox.stale_after() == timedelta(seconds=91)
    settings.COMMS_DELIVERY_STALE_SECONDS = 300
    assert outbox.stale_after() == timedelta(seconds=300)


def test_send_delivery_task__time_limits_come_from_settings():
    from django.conf import settings

    assert tasks.send_delivery.soft_time_limit == settings.COMMS_SEND_SOFT_TIME_LIMIT
    assert tasks.send_delivery.time_limit == settings.COMMS_SEND_TIME_LIMIT
    soft, hard = outbox.send_time_limits()
    assert (soft, hard) == (settings.COMMS_SEND_SOFT_TIME_LIMIT, settings.COMMS_SEND_TIME_LIMIT)
