from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.models import FeedToken, Heartbeat, UserPreference

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


def feed_token_get(*, user: Any, scope: str) -> FeedToken | None:
    """The person's token for a feed, or None (never created here: a GET writes nothing)."""
    if not getattr(user, "is_authenticated", False):
        return None
    return FeedToken.objects.filter(user_id=user.pk, scope=scope).first()


def feed_token_user(*, token: str, scope: str) -> Any:
    """The active owner of a feed token of this scope, or None (unknown, other scope)."""
    if not token:
        return None
    found = FeedToken.objects.select_related("user").filter(token=token, scope=scope).first()
    if found is None or not found.user.is_active:
        return None
    return found.user


def user_time_zone(*, user: Any) -> str:
    """The IANA zone the person reads times in: their preference, else settings.TIME_ZONE."""
    default: str = settings.TIME_ZONE
    if not getattr(user, "is_authenticated", False):
        return default
    names = UserPreference.objects.filter(user_id=user.pk).values_list("time_zone", flat=True)
    return str(next(iter(names), "") or default)
