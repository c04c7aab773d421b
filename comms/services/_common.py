"""Helpers shared by the service modules of comms: the clock, the acting user, the checks of
names and events every writer makes, and the notice row lock.

Private to `comms.services`; callers outside the package use the services themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from comms.models import Notice, NoticeEvent
from core.exceptions import ApplicationError

State = Notice.State


def _now(now: datetime | None) -> datetime:
    return now if now is not None else timezone.now()


def _user(actor: AbstractBaseUser | None) -> Any:
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _clean_name(name: str, *, what: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError(f"Give the {what} a name.", field="name")
    return name[:100]


def _clean_event(event: str, *, field: str = "event") -> str:
    if event not in NoticeEvent.values:
        raise ApplicationError(
            f"Unknown event {event!r}; use one of {', '.join(NoticeEvent.values)}.", field=field
        )
    return event


def _lock_notice(notice: Notice) -> Notice:
    return Notice.objects.select_for_update().get(pk=notice.pk)
