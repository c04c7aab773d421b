"""Celery tasks of notices, called directly (the real worker runs them in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from comms import channels, tasks
from comms.models import Delivery, Notice
from rollouts import services as rollout_services
from rollouts.models import RolloutEvent
from tests.comms.factories import AudienceFactory, ChannelFactory, standard_audiences
from tests.rollouts.factories import make_rollout

pytestmark = pytest.mark.django_db
T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def queued_delivery() -> Delivery:
    from comms import services

    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    notice = services.notice_create(
        audience=audience, subject="Hi", body="Hi", actor=None, send_now=True
    )
    return notice.deliveries.get()


def test_send_delivery__task_options__late_ack_retries_backoff_limits():
    task = tasks.send_delivery
    assert task.acks_late is True
    assert task.autoretry_for == (channels.TransientDeliveryError,)
    assert task.max_retries == 6
    assert task.retry_backoff == 2 and task.retry_backoff_max == 300 and task.retry_jitter
    assert task.time_limit == 60 and task.soft_time_limit == 45


def test_send_delivery__ok__sent(monkeypatch):
    monkeypatch.setattr(channels, "send", lambda message: channels.Result(status=202))
    delivery = queued_delivery()

    result = tasks.send_delivery.apply(args=(delivery.id,)).get()

    delivery.refresh_from_db()
    assert result == delivery.state == Delivery.State.SENT
    assert delivery.response_code == 202


def test_send_delivery__always_transient__retried_until_failed(monkeypatch):
    calls = []

    def down(message):
        calls.append(message.delivery_id)
        raise channels.TransientDeliveryError("HTTP 503", status=503)

    monkeypatch.setattr(channels, "send", down)
    delivery = queued_delivery()

    # Eager apply runs the retries in place (no countdown): 1 try + 6 retries.
    tasks.send_delivery.apply(args=(delivery.id,))

    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED
    assert delivery.attempts == 7 == len(calls)
    assert len(set(calls)) == 1  # the same idempotency id every time
    assert Notice.objects.get().state == Notice.State.FAILED


def test_send_delivery__duplicate_message__sends_once(monkeypatch):
    calls = []
    monkeypatch.setattr(
        channels, "send", lambda message: calls.append(message) or channels.Result(status=200)
    )
    delivery = queued_delivery()

    tasks.send_delivery.apply(args=(delivery.id,))
    tasks.send_delivery.apply(args=(delivery.id,))

    assert len(calls) == 1


def test_dispatch_events__ids__notices_created_once():
    standard_audiences()
    rollout = make_rollout()
    rollout_services.rollout_start(rollout=rollout, actor=None, source="ui", now=T0)
    ids = list(rollout.events.values_list("id", flat=True))

    first = tasks.dispatch_events.apply(args=(ids,)).get()
    second = tasks.dispatch_events.apply(args=(ids,)).get()

    assert (first, second) == (3, 0)
    assert Notice.objects.filter(rollout=rollout, event="phase_started").count() == 2


def test_sweep_events__picks_up_undispatched():
    standard_audiences()
    rollout = make_rollout()
    rollout_services.rollout_start(rollout=rollout, actor=None, source="ui", now=T0)

    handled = tasks.sweep_events.apply().get()

    assert handled == RolloutEvent.objects.count() == 3
    assert not RolloutEvent.objects.filter(dispatched_at__isnull=True).exists()


def test_sweep_notices__due_notice_dispatched():
    from comms import services

    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    notice = services.notice_create(
        audience=audience, subject="Hi", body="Hi", actor=None,
        send_at=timezone.now() + timedelta(seconds=30),
    )  # fmt: skip
    Notice.objects.filter(pk=notice.pk).update(send_at=timezone.now() - timedelta(seconds=1))

    result = tasks.sweep_notices.apply().get()

    notice.refresh_from_db()
    assert result["notices_sent"] == 1
    assert notice.state == Notice.State.SENDING


def test_events_committed__receiver_enqueues_ids_on_commit(
    monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[list[int]] = []
    monkeypatch.setattr(tasks.dispatch_events, "delay", lambda ids: sent.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        rollout = make_rollout()
    created = rollout.events.get()
    assert sent == [[created.id]]


def test_events_committed__broker_down__no_error(monkeypatch, django_capture_on_commit_callbacks):
    def broken(ids):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.dispatch_events, "delay", broken)
    with django_capture_on_commit_callbacks(execute=True):
        rollout = make_rollout()
    assert RolloutEvent.objects.filter(rollout=rollout, dispatched_at__isnull=True).exists()


def test_notice_send__enqueued_after_commit_in_one_batch(
    monkeypatch, django_capture_on_commit_callbacks
):
    published: list[int] = []
    monkeypatch.setattr(
        tasks.send_delivery, "apply_async", lambda args, producer=None: published.append(args[0])
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        delivery = queued_delivery()
    assert published == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    assert published == [delivery.id]
