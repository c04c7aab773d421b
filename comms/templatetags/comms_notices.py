"""Small display helpers for notice pages: lead times, state pills (icon + words). Times use
the `|when` builtin (core/when.py), in the viewer's zone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import template

from comms.templating import format_duration

register = template.Library()

STATES: dict[str, tuple[str, str]] = {
    # state: (css class, icon) - the words come from the model; colour is never alone.
    "draft": ("", "✎"),
    "scheduled": ("", "◷"),
    "waiting": ("pill-warn", "‖"),
    "planned": ("", "○"),
    "late": ("pill-warn", "⚠"),
    "conditional": ("", "?"),
    "pending": ("", "…"),
    "queued": ("", "…"),
    "sending": ("pill-warn", "↻"),
    "retrying": ("pill-warn", "↻"),
    "sent": ("pill-ok", "✓"),
    "partially_failed": ("pill-warn", "⚠"),
    "failed": ("pill-bad", "✗"),
    "cancelled": ("", "⊘"),
}
LABELS = {
    "waiting": "Waiting",
    "planned": "Planned",
    "late": "Too late",
    "conditional": "If it happens",
    "partially_failed": "Partially failed",
}


@register.filter
def duration(value: timedelta | None) -> str:
    return format_duration(value) if value else ""


@register.inclusion_tag("comms/_state.html")
def state_pill(state: str, label: str = "") -> dict[str, Any]:
    css, icon = STATES.get(state, ("", "•"))
    return {"css": css, "icon": icon, "label": label or LABELS.get(state, state.capitalize())}
