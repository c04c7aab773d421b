"""Helpers shared by the support selectors: page sizes, Markdown, times in a rollout's zone,
and the subqueries that find the event that put a rollout in its state.

Private to `support.selectors`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.safestring import SafeString

from flags.models import Environment
from rollouts.models import RolloutEvent

PAGE_SIZE = 20
FEED_SIZE = 50


def _markdown(text: str) -> SafeString:
    from core.markdown import render_markdown

    return render_markdown(text)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def format_when(
    at: datetime | None, tz_name: str | None = "UTC", *, now: datetime | None = None
) -> str:
    """'10:42 UTC' today, 'Tue 25 Nov 10:42 UTC' otherwise, in the rollout's time zone."""
    if at is None:
        return ""
    tz = _zone(tz_name)
    local = at.astimezone(tz)
    now_local = (now or timezone.now()).astimezone(tz)
    zone = local.tzname() or ""
    if local.date() == now_local.date():
        return f"{local:%H:%M} {zone}".strip()
    return f"{local:%a} {local.day} {local:%b %H:%M} {zone}".strip()


def _state_event_subqueries() -> dict[str, Subquery]:
    # Rollout.State values that are also RolloutEvent.Kind values (held, paused, scheduled,
    # completed, rolled_back, cancelled) name the event that put the rollout in its state.
    latest = RolloutEvent.objects.filter(rollout=OuterRef("pk"), kind=OuterRef("state")).order_by(
        "-at", "-id"
    )
    return {
        "state_event_at": Subquery(latest.values("at")[:1]),
        "state_event_reason": Subquery(latest.values("reason")[:1]),
    }


def environments() -> list[Environment]:
    return list(Environment.objects.order_by("order", "key"))
