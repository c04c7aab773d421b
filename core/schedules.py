"""Beat's periodic tasks in the database: helpers for data migrations, and the tick's sync.

Data migrations store each periodic task once. The tasks that run on the scheduler tick (the
rollout sweep and the heartbeat the dashboard watches) follow `ROLLCALL_TICK_SECONDS`: beat
calls `sync_tick_schedules` when it starts (`config.celery`), so changing the setting and
restarting beat changes the interval.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

#: Celery task names that run once per scheduler tick.
TICK_TASKS = ("rollouts.sweep", "core.heartbeat")


def ensure_periodic_task(apps: Any, *, name: str, task: str, every_seconds: int) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = interval_model.objects.get_or_create(every=every_seconds, period="seconds")
    task_model.objects.update_or_create(
        name=name, defaults={"task": task, "interval": interval, "enabled": True}
    )


def remove_periodic_task(apps: Any, *, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()


def sync_tick_schedules(*, every_seconds: int | None = None) -> list[str]:
    """Set the tick tasks' stored interval to `ROLLCALL_TICK_SECONDS`; the names changed."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = int(every_seconds or settings.ROLLCALL_TICK_SECONDS)
    if every < 1:
        raise ValueError(f"ROLLCALL_TICK_SECONDS must be 1 or more, not {every}.")
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=every, period=IntervalSchedule.SECONDS
    )
    changed = []
    for task in PeriodicTask.objects.filter(task__in=TICK_TASKS).exclude(interval=interval):
        task.interval = interval
        task.save()  # through the model: beat's DatabaseScheduler notices and reloads
        changed.append(task.name)
    if changed:
        logger.info("schedules.tick_synced every_seconds=%s tasks=%s", every, ",".join(changed))
    return changed
