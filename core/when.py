"""One way to show a time, in one time zone per viewer.

Every page shows times in the viewer's own zone (their `UserPreference`, activated per
request by `core.middleware.ViewerTimeZoneMiddleware`; settings.TIME_ZONE, UTC, otherwise)
and in one format, defined here once:

    Tue 3 Dec 2024, 09:00 CET      DATETIME_FORMAT (`{{ value|when }}`)
    Tue 3 Dec 2024                 DATE_FORMAT (`{{ value|when_date }}`)
    09:00                          TIME_FORMAT (`{{ value|when_time }}`, inside a named day)
    3 Dec, 09:00                   SHORT_FORMAT (chart axes)
    3 Dec                          DAY_FORMAT (chart axes, ticks a day or more apart)
    December 2024                  MONTH_FORMAT (the calendar's month)

Notices and e-mails are read by their recipients, in the audience's zone, with the same
format (`comms.templating.format_time`). Templates never write their own `|date:"..."`
formats; `tests/core/test_when.py` fails when one comes back.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import dateformat, timezone

DATETIME_FORMAT = "D j M Y, H:i T"
DATE_FORMAT = "D j M Y"
TIME_FORMAT = "H:i"
SHORT_FORMAT = "j M, H:i"
DAY_FORMAT = "j M"
MONTH_FORMAT = "F Y"

# Offered first in the zone picker: where most people reading a rollout sit.
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)


@lru_cache(maxsize=1)
def available_zones() -> frozenset[str]:
    return frozenset({*zoneinfo.available_timezones(), "UTC"})


def is_zone(name: str) -> bool:
    return name in available_zones()


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone of that name; settings.TIME_ZONE (UTC) for an unknown or empty name."""
    if name and is_zone(name):
        return ZoneInfo(name)
    return ZoneInfo(settings.TIME_ZONE)


@lru_cache(maxsize=1)
def zone_choices() -> list[tuple[str, str]]:
    """Every IANA zone for a <select>: the common ones first, then all of them, sorted."""
    rest = sorted(n for n in available_zones() if n not in COMMON_ZONES)
    return [(n, n.replace("_", " ")) for n in (*COMMON_ZONES, *rest)]


def viewer_zone() -> tzinfo:
    """The zone of whoever is looking (the active zone of this request or thread)."""
    return timezone.get_current_timezone()


def viewer_zone_name() -> str:
    return timezone.get_current_timezone_name()


def local(value: datetime, tz: tzinfo | None = None) -> datetime:
    """`value` on the wall clock of `tz` (the viewer's zone when None); a naive value is UTC.
    Every page, chart and table turns an instant into a shown time through here."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, ZoneInfo("UTC"))
    return timezone.localtime(value, tz)


def format_datetime(value: datetime | None, tz: tzinfo | None = None, fmt: str = "") -> str:
    """`Tue 3 Dec 2024, 09:00 CET` in `tz` (the viewer's zone by default); '' for no time."""
    if value is None:
        return ""
    return dateformat.format(local(value, tz), fmt or DATETIME_FORMAT)


def format_date(value: date | datetime | None, tz: tzinfo | None = None) -> str:
    """`Tue 3 Dec 2024`: a day, or the day of a time in `tz` (the viewer's zone)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = local(value, tz)
    return dateformat.format(value, DATE_FORMAT)


def format_time(value: datetime | None, tz: tzinfo | None = None) -> str:
    """`09:00`: the time of day only, where the day is already named next to it."""
    return format_datetime(value, tz, TIME_FORMAT)


def format_short(value: datetime | None, tz: tzinfo | None = None) -> str:
    """`3 Dec, 09:00`: where space is short (chart axes)."""
    return format_datetime(value, tz, SHORT_FORMAT)


def format_wall(wall: datetime, fmt: str) -> str:
    """A wall-clock time already in the zone it is shown in (chart ticks), in one of the
    formats above that names no zone (SHORT_FORMAT, DAY_FORMAT, TIME_FORMAT)."""
    return dateformat.format(wall, fmt)


def format_month(value: date) -> str:
    """`December 2024`."""
    return dateformat.format(value, MONTH_FORMAT)


def iso(value: date | datetime | None) -> str:
    """Machine-readable: ISO 8601 (a time in UTC with its offset), for `<time datetime>` and
    query strings."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local(value, ZoneInfo("UTC")).isoformat()
    return value.isoformat()
