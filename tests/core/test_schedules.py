"""The scheduler tick is configuration: beat's stored intervals follow ROLLCALL_TICK_SECONDS."""

from __future__ import annotations

import pytest
from django.apps import apps
from django_celery_beat.models import PeriodicTask

from core.schedules import ensure_periodic_task, sync_tick_schedules


@pytest.fixture
def stored(db) -> None:
    # What the data migrations store once, whatever the setting.
    ensure_periodic_task(
        apps, name="Rollout scheduler sweep", task="rollouts.sweep", every_seconds=30
    )
    ensure_periodic_task(apps, name="Scheduler heartbeat", task="core.heartbeat", every_seconds=30)
    ensure_periodic_task(apps, name="Notice sweep", task="comms.sweep_notices", every_seconds=10)


def _every(task: str) -> int:
    return PeriodicTask.objects.filter(task=task).values_list("interval__every", flat=True)[0]


def test_sync_tick_schedules__setting_two_seconds__sweep_and_heartbeat_follow(stored, settings):
    settings.ROLLCALL_TICK_SECONDS = 2
    changed = sync_tick_schedules()
    assert sorted(changed) == ["Rollout scheduler sweep", "Scheduler heartbeat"]
    assert _every("rollouts.sweep") == 2
    assert _every("core.heartbeat") == 2
    assert _every("comms.sweep_notices") == 10  # not a tick task


def test_sync_tick_schedules__already_in_step__nothing_saved(stored, settings):
    settings.ROLLCALL_TICK_SECONDS = 30
    assert sync_tick_schedules() == []


def test_sync_tick_schedules__zero__refused(stored):
    with pytest.raises(ValueError, match="1 or more"):
        sync_tick_schedules(every_seconds=-1)
