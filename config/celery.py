import os

from celery import Celery
from celery.signals import beat_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("rollcall")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@beat_init.connect
def _tick_follows_settings(sender: object, **kwargs: object) -> None:
    """The stored sweep and heartbeat intervals follow ROLLCALL_TICK_SECONDS at beat's start."""
    from core.schedules import sync_tick_schedules

    sync_tick_schedules()
