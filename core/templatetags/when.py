"""The one way templates show a time (see core/when.py); a builtin, so no {% load %}.

<time datetime="{{ at|iso }}">{{ at|when }}</time>   Tue 3 Dec 2024, 09:00 CET
"""

from __future__ import annotations

from datetime import date, datetime

from django import template

from core import when as w

register = template.Library()


@register.filter
def when(value: datetime | None) -> str:
    """A time in the viewer's zone: `Tue 3 Dec 2024, 09:00 CET`."""
    return w.format_datetime(value) if isinstance(value, datetime) else ""


@register.filter
def when_date(value: date | datetime | None) -> str:
    """A day (or the day of a time, in the viewer's zone): `Tue 3 Dec 2024`."""
    return w.format_date(value) if isinstance(value, date) else ""


@register.filter
def when_time(value: datetime | None) -> str:
    """The time of day in the viewer's zone, next to a day already named: `09:00`."""
    return w.format_time(value) if isinstance(value, datetime) else ""


@register.filter
def weekday(value: date | None) -> str:
    """The day's short name: `Tue` (calendar column heads)."""
    from django.utils import dateformat

    return dateformat.format(value, "D") if isinstance(value, date) else ""


@register.filter
def iso(value: date | datetime | None) -> str:
    """ISO 8601 for machines: `<time datetime>`, query strings."""
    return w.iso(value) if isinstance(value, date) else ""
