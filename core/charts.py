"""What every server-rendered SVG chart shares (rollouts.charts, rollouts.check_charts,
flags.usage_views): one helper that puts a time on the displayed wall clock, text widths
estimated per character, time axes with round ticks whose labels never overlap, and the
table that stands in for a chart on a narrow screen.

Charts are drawn in a 12-unit font (`FONT` here, `.chart text` in rollcall.css): the
estimates below assume it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import pairwise

from django.utils import timezone

from core.when import DAY_FORMAT, SHORT_FORMAT, TIME_FORMAT, format_wall, local

FONT = 12.0  # chart text size, in viewBox units
TICK_GAP = 10.0  # least space between two axis labels

# Widths of system-ui glyphs in em, rounded up: the estimate may be a little wide (labels
# then keep more air), never narrow (labels would touch).
_NARROW = set("il.,:;'|!ijtfr ()1")
_WIDE = set("MWmw%@—…")
_CAPS = set("ABCDEFGHJKLNOPQRSTUVXYZ")


def text_width(text: str, font: float = FONT) -> float:
    """Estimated rendered width of `text` at `font` units."""
    em = 0.0
    for ch in text:
        if ch in _NARROW:
            em += 0.36
        elif ch in _WIDE:
            em += 0.92
        elif ch in _CAPS:
            em += 0.7
        else:
            em += 0.6
    return em * font


# ---------------------------------------------------------------------------------------------
# Time axes


MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
STEPS: tuple[timedelta, ...] = (
    *(MINUTE * n for n in (1, 2, 5, 10, 15, 30)),
    *(HOUR * n for n in (1, 2, 3, 6, 12)),
    *(DAY * n for n in (1, 2, 7, 14, 28, 56, 112)),
)
MAX_TICKS = 60  # a step that would need more is too small to consider


@dataclass(frozen=True)
class Tick:
    at: datetime
    x: float
    label: str

    @property
    def width(self) -> float:
        return text_width(self.label)

    @property
    def left(self) -> float:
        return self.x - self.width / 2

    @property
    def right(self) -> float:
        return self.x + self.width / 2


def _floor(wall: datetime, step: timedelta) -> datetime:
    """The last round wall-clock time at or before `wall` (naive) for `step`: a multiple of
    the step since midnight below a day; midnight for days (Mondays for weeks, every other
    day counted from 0001-01-01 for two days)."""
    midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    if step < DAY:
        since = wall - midnight
        return midnight + step * (since // step)
    days = step.days
    ordinal = midnight.date().toordinal()
    # Weeks start on Mondays: 0001-01-01, ordinal 1, was one.
    offset = (ordinal - 1) % days if days % 7 == 0 else ordinal % days
    return datetime.combine(date.fromordinal(ordinal - offset), midnight.time())


def _aware(wall: datetime, tz: tzinfo) -> datetime | None:
    """The instant a naive wall-clock time names in `tz`; None inside a DST gap."""
    at = wall.replace(tzinfo=tz).astimezone(UTC)  # (same-zone astimezone would not check)
    if local(at, tz).replace(tzinfo=None) != wall:
        return None
    return at


def _label(wall: datetime, step: timedelta, *, with_date: bool) -> str:
    if step >= DAY:
        return format_wall(wall, DAY_FORMAT)
    return format_wall(wall, SHORT_FORMAT if with_date else TIME_FORMAT)


@dataclass(frozen=True)
class TimeScale:
    """Maps instants of [start, end] onto [x0, x1] (clamped)."""

    start: datetime
    end: datetime
    x0: float
    x1: float

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        frac = min(1.0, max(0.0, (at - self.start).total_seconds() / span))
        return round(self.x0 + frac * (self.x1 - self.x0), 1)


def _candidates(scale: TimeScale, step: timedelta, tz: tzinfo, lo: float, hi: float) -> list[Tick]:
    """Round times of `step` inside the scale whose labels stay within lo..hi."""
    wall = _floor(local(scale.start, tz).replace(tzinfo=None), step)
    ticks: list[Tick] = []
    while len(ticks) <= MAX_TICKS:
        at = _aware(wall, tz)
        if at is not None and at > scale.end:
            break
        if at is not None and at >= scale.start:
            # Below a day, the date is said at the first label and where the day changes.
            new_day = not ticks or local(ticks[-1].at, tz).date() != wall.date()
            tick = Tick(at, scale.x(at), _label(wall, step, with_date=new_day))
            if tick.left >= lo and tick.right <= hi:
                ticks.append(tick)
        wall += step
    return ticks


def _fits(ticks: Sequence[Tick]) -> bool:
    return all(b.left - a.right >= TICK_GAP for a, b in pairwise(ticks))


def time_ticks(
    start: datetime,
    end: datetime,
    *,
    x0: float,
    x1: float,
    tz: tzinfo | None = None,
    bounds: tuple[float, float] | None = None,
) -> list[Tick]:
    """Ticks of a time axis from `start` (at x0) to `end` (at x1), at round wall-clock times
    of `tz` (the active zone when None): the smallest step of `STEPS` whose labels keep
    `TICK_GAP` apart. A label that would cross `bounds` (default x0..x1) is left out, and so
    is one that still overlaps its neighbour (the coarsest step on a very long span)."""
    tz = tz or timezone.get_current_timezone()
    scale = TimeScale(start, end, x0, x1)
    lo, hi = bounds if bounds is not None else (x0, x1)
    ticks: list[Tick] = []
    for step in STEPS:
        if (end - start) / step > MAX_TICKS:
            continue
        ticks = _candidates(scale, step, tz, lo, hi)
        if _fits(ticks):
            return ticks
    kept: list[Tick] = []
    for t in ticks:
        if not kept or t.left - kept[-1].right >= TICK_GAP:
            kept.append(t)
    return kept


# ---------------------------------------------------------------------------------------------
# The table a chart is also shown as (templates/_partials/chart_figure.html)


@dataclass(frozen=True)
class ChartTable:
    caption: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    empty: str = "Nothing to show yet."
