"""rollouts.tasks called directly (a real worker runs them in tests/integration)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from core.exceptions import ApplicationError
from core.models import Heartbeat
from rollouts import services, tasks
from rollouts.models import Rollout, RolloutEvent
from rollouts.services import scheduler
from tests.conftest import clear_own_cache
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db
UI = RolloutEvent.Source.UI


@pytest.fixture(autouse=True)
def _clear_cache():
    clear_own_cache()
    yield
    clear_own_cache()


@pytest.fixture
def sent(monkeypatch):
    """The steps the sweep sent, one list per message."""
    calls: list[list[tuple[int, int]]] = []
    monkeypatch.setattr(
        tasks.advance_many, "delay", lambda steps: calls.append([tuple(s) for s in steps])
    )
    return calls


def due_rollout(env, *, soak=timedelta(minutes=10)) -> Rollout:
    """A running rollout whose phase 2 became due a minute ago."""
    rollout = make_rollout(
        environment=env, release=ReleaseFactory(), phases=soak_plan(10, 50, 100, soak=soak)
    )
    started = timezone.now() - soak - timedelta(minutes=1)
    return services.rollout_start(rollout=rollout, actor=None, source=UI, now=started)


def test_migration__stores_the_sweep_in_beat_every_30_seconds():
    task = PeriodicTask.objects.get(name="Rollout scheduler sweep")
    assert task.task == "rollouts.sweep"
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (30, "seconds")


def test_sweep__due_rollouts__batched_advances_after_commit(
    sent, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(tasks, "BATCH", 2)
    env = EnvironmentFactory()
    due = [due_rollout(env) for _ in range(3)]
    make_rollout(environment=env)  # a draft: never due
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert tasks.sweep() == 3
    assert len(callbacks) == 2  # two messages: 2 + 1 steps
    assert sorted(step for message in sent for step in message) == sorted((r.id, 0) for r in due)
    assert Heartbeat.objects.filter(name=tasks.SWEEP_HEARTBEAT).exists()


def test_sweep__step_already_queued__not_sent_twice_until_a_worker_took_it(
    sent, monkeypatch, django_capture_on_commit_callbacks
):
    rollout = due_rollout(EnvironmentFactory())
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep()
        tasks.sweep()  # an overlapping sweep while the message waits
    assert sent == [[(rollout.id, 0)]]
    # A worker took it but could not lock the row (a person was changing it): still due.
    monkeypatch.setattr(tasks, "rollouts_advance_steps", lambda **kw: 0)
    assert tasks.advance_many([[rollout.id, 0]]) == 0
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep()
    assert sent == [[(rollout.id, 0)], [(rollout.id, 0)]]


@pytest.mark.django_db(transaction=True)  # on_commit runs for real: consumers hear about it
def test_advance_many__several_due__each_advances_once_and_consumers_hear_once():
    env = EnvironmentFactory()
    rollouts = [due_rollout(env) for _ in range(3)]
    heard: list[list[int]] = []

    def receiver(sender, event_ids, **kwargs):
        heard.append(list(event_ids))

    services.events_committed.connect(receiver, dispatch_uid="test-heard")
    try:
        steps = [[r.id, 0] for r in rollouts] + [[rollouts[0].id, 0]]  # one duplicate
        assert tasks.advance_many(steps) == 3
    finally:
        services.events_committed.disconnect(dispatch_uid="test-heard")
    assert len(heard) == 1  # one signal for the batch
    assert len(heard[0]) == 3


def test_advance__due__applies_once_then_does_nothing():
    rollout = due_rollout(EnvironmentFactory())
    assert tasks.advance(rollout.id, 0) is True
    assert tasks.advance(rollout.id, 0) is False  # a duplicate message or a retry
    rollout.refresh_from_db()
    assert rollout.current_phase_index == 1
    assert rollout.events.filter(kind="advanced", to_phase_index=1).count() == 1
    event = rollout.events.get(kind="advanced", to_phase_index=1)
    assert event.source == RolloutEvent.Source.SCHEDULER
    assert timedelta(0) < event.at - event.due_at < timedelta(minutes=2)


def test_advance__rollout_gone__false():
    assert tasks.advance(987654, 0) is False


def test_advance_many__domain_error__logged_and_the_others_go_on(monkeypatch, caplog):
    env = EnvironmentFactory()
    broken, fine = due_rollout(env), due_rollout(env)
    real = services.rollout_advance

    def refuse(**kwargs):
        if kwargs["rollout_id"] == broken.id:
            raise ApplicationError("segment missing")
        return real(**kwargs)

    monkeypatch.setattr(scheduler, "rollout_advance", refuse)
    assert tasks.advance_many([[broken.id, 0], [fine.id, 0]]) == 1
    assert Rollout.objects.get(pk=fine.pk).current_phase_index == 1
    assert "rollout.advance_failed" in caplog.text
    assert "segment missing" in caplog.text
