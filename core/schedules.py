"""Helpers for data migrations that store beat's periodic tasks in the database."""

from __future__ import annotations

from typing import Any


def ensure_periodic_task(apps: Any, *, name: str, task: str, every_seconds: int) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = interval_model.objects.get_or_create(every=every_seconds, period="seconds")
    task_model.objects.update_or_create(
        name=name, defaults={"task": task, "interval": interval, "enabled": True}
    )


def remove_periodic_task(apps: Any, *, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=name).delete()
