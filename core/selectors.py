from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from core.models import Heartbeat

SCHEDULER_HEARTBEAT = "scheduler"


@dataclass(frozen=True)
class SchedulerStatus:
    last_seen: datetime | None
    age_seconds: int | None
    stale: bool


def scheduler_status(*, now: datetime | None = None) -> SchedulerStatus:
    now = now or timezone.now()
    beat = Heartbeat.objects.filter(name=SCHEDULER_HEARTBEAT).first()
    if beat is None:
        return SchedulerStatus(last_seen=None, age_seconds=None, stale=True)
    age = max(0, int((now - beat.last_seen).total_seconds()))
    return SchedulerStatus(
        last_seen=beat.last_seen, age_seconds=age, stale=age > 3 * settings.ROLLCALL_TICK_SECONDS
    )
