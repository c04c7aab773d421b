"""Helpers shared by the support selectors: page sizes, Markdown, times in the viewer's zone,
and the subqueries that find the event that put a rollout in its state.

Private to `support.selectors`.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.safestring import SafeString

from core.when import format_datetime, viewer_zone
from flags.models import Environment
from rollouts.models import RolloutEvent

PAGE_SIZE = 20
FEED_SIZE = 50


def _markdown(text: str) -> SafeString:
    from core.markdown import render_markdown

    return render_markdown(text)


def format_when(at: datetime | None, *, now: datetime | None = None) -> str:
    """In the viewer's time zone (core/when.py): '10:42 UTC' today, the one full format
    ('Tue 25 Nov 2026, 10:42 UTC') otherwise."""
    if at is None:
        return ""
    tz = viewer_zone()
    if timezone.localtime(at, tz).date() == timezone.localtime(now or timezone.now(), tz).date():
        return format_datetime(at, tz, "H:i T")
    return format_datetime(at, tz)


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
