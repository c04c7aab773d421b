import uuid

from django.core.cache import cache

from core.models import Heartbeat


def test_task__sent_through_broker__executed_by_real_worker(celery_processes, wait_for):
    from core.tasks import ping

    celery_processes.worker()
    token = uuid.uuid4().hex[:12]
    ping.delay(token)
    wait_for(
        lambda: Heartbeat.objects.filter(name=f"ping:{token}").exists(),
        what="the worker to run core.ping",
        logs=celery_processes,
    )
    # The worker wrote through the shared cache (Redis) too.
    assert cache.get(f"ping:{token}") == "pong"


def test_beat__schedule_stored_in_database__runs_tasks(celery_processes, wait_for):
    from django.apps import apps

    from core.schedules import ensure_periodic_task

    # Transactional tests start from an empty database: store the schedule the way the data
    # migration does, tightened to 1 s. Beat must read it from the database.
    ensure_periodic_task(apps, name="Scheduler heartbeat", task="core.heartbeat", every_seconds=1)
    celery_processes.worker()
    celery_processes.beat(tick=1)
    wait_for(
        lambda: Heartbeat.objects.filter(name="scheduler").exists(),
        what="beat to schedule core.heartbeat and a worker to run it",
        logs=celery_processes,
    )
