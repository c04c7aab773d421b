"""The scheduler tick is configuration: ROLLCALL_TICK_SECONDS, not the stored 30 s, paces beat.

The data migration stores the sweep every 30 s; beat started with ROLLCALL_TICK_SECONDS=2
syncs the stored schedule when it starts, so phases are applied within one 2 s tick.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.apps import apps
from django_celery_beat.models import PeriodicTask

from core.schedules import ensure_periodic_task
from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.conftest import clear_own_cache
from tests.rollouts.factories import EnvironmentFactory, make_rollout, phase

TICK = 2
SOAK = timedelta(seconds=3)


def test_beat__tick_setting_two_seconds_over_stored_thirty__phases_within_one_tick(
    celery_processes, wait_for
):
    clear_own_cache()
    # What the migrations store, whatever the setting.
    ensure_periodic_task(
        apps, name="Rollout scheduler sweep", task="rollouts.sweep", every_seconds=30
    )
    ensure_periodic_task(apps, name="Scheduler heartbeat", task="core.heartbeat", every_seconds=30)
    rollout = make_rollout(
        environment=EnvironmentFactory(key="staging", name="Staging"),
        strategy="canary",
        phases=[phase(f"{p}%", p, soak=SOAK if i else None) for i, p in enumerate((10, 50, 100))],
    )
    celery_processes.worker()
    celery_processes.beat(tick=TICK)
    wait_for(
        lambda: PeriodicTask.objects.filter(task="rollouts.sweep", interval__every=TICK).exists(),
        timeout=60,
        what="beat to sync the sweep interval from ROLLCALL_TICK_SECONDS",
        logs=celery_processes,
    )
    assert PeriodicTask.objects.get(task="core.heartbeat").interval.every == TICK
    services.rollout_start(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)
    wait_for(
        lambda: Rollout.objects.get(pk=rollout.pk).state == Rollout.State.COMPLETED,
        timeout=60,
        what="the scheduler to apply every phase",
        logs=celery_processes,
    )
    advanced = list(rollout.events.filter(kind="advanced").order_by("at"))
    assert [e.to_percentage for e in advanced] == [10, 50, 100]
    for before, step in itertools.pairwise(advanced):
        assert step.source == RolloutEvent.Source.SCHEDULER
        assert step.due_at == before.at + SOAK
        # Due at most one tick before a sweep ran (plus the time a worker takes to pick it up).
        assert step.at - step.due_at <= timedelta(seconds=TICK + 1), (step.at, step.due_at)
