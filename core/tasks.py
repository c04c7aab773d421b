from celery import shared_task

from core.selectors import SCHEDULER_HEARTBEAT
from core.services import heartbeat_record


@shared_task(name="core.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Scheduled by beat, run by a worker: proves both are alive."""
    heartbeat_record(name=SCHEDULER_HEARTBEAT)


@shared_task(name="core.ping")
def ping(token: str) -> str:
    """Round trip through the broker, used by the integration tests and /readyz tooling."""
    from django.core.cache import cache

    cache.set(f"ping:{token}", "pong", 300)
    heartbeat_record(name=f"ping:{token}"[:64])
    return "pong"
