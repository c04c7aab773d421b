"""Freeze and allow windows as pure time arithmetic (no Django, no database).

A window is one-off (`starts_at` .. `ends_at`, aware) or recurring: a cron expression read
in the window's IANA time zone, each occurrence lasting `duration` of *wall-clock* time. So
"0 9 * * 1-5" for 7 hours is 09:00-16:00 local on every weekday, also on the days the clocks
change, and a nightly 22:00 + 10 h freeze ends at 08:00 local whether that night had 9, 10
or 11 real hours. Local times that do not exist (the spring-forward gap) are read with the
offset before the change, as `zoneinfo` does for fold=0.

Rules: a moment is allowed when no deny window covers it and, if any allow window applies,
one of them covers it. Deny beats allow. Occurrences are half-open: [start, end).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter

DENY = "deny"
ALLOW = "allow"
# How far ahead "the next allowed moment" is looked for before giving up.
HORIZON = timedelta(days=400)
# Cron lookups start this far off the instant, so that wall-clock folds and gaps around a
# DST change never make us miss the occurrence that covers it.
_MARGIN = timedelta(hours=3)
_MAX_STEPS = 2000


@dataclass(frozen=True)
class WindowSpec:
    name: str
    kind: str = DENY
    tz: str = "UTC"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cron: str = ""
    duration: timedelta | None = None
    id: int | None = None
    environment_id: int | None = None

    @property
    def recurring(self) -> bool:
        return bool(self.cron)


@dataclass(frozen=True)
class Block:
    """Why a moment is not allowed, and until when (None: no allowed moment in sight)."""

    window: WindowSpec | None  # None: outside every allow window
    until: datetime | None

    @property
    def words(self) -> str:
        if self.window is None:
            return "outside the allowed hours"
        return f"freeze window “{self.window.name}”"


def valid_cron(expr: str) -> bool:
    parts = expr.split()
    return len(parts) == 5 and croniter.is_valid(expr)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(t: datetime, tz: ZoneInfo) -> datetime:
    return t.astimezone(tz).replace(tzinfo=None)


def _aware(naive: datetime, tz: ZoneInfo) -> datetime:
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _span(spec: WindowSpec, naive_start: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    assert spec.duration is not None
    return _aware(naive_start, tz), _aware(naive_start + spec.duration, tz)


def occurrence_at(spec: WindowSpec, t: datetime) -> tuple[datetime, datetime] | None:
    """The occurrence of `spec` that covers `t`, as aware (start, end), or None."""
    if not spec.recurring:
        if spec.starts_at is None or spec.ends_at is None:
            return None
        return (spec.starts_at, spec.ends_at) if spec.starts_at <= t < spec.ends_at else None
    if not spec.duration or spec.duration <= timedelta(0):
        return None
    tz = _zone(spec.tz)
    it = croniter(spec.cron, _local(t, tz) + _MARGIN)
    for _ in range(_MAX_STEPS):
        start, end = _span(spec, it.get_prev(datetime), tz)
        if start <= t:
            # The latest start at or before t; an earlier occurrence (same length) ends
            # earlier, so if this one does not cover t, none does.
            return (start, end) if t < end else None
    return None


def next_start_after(spec: WindowSpec, t: datetime) -> datetime | None:
    """The first occurrence start strictly after `t` (None: there is none)."""
    if not spec.recurring:
        return spec.starts_at if spec.starts_at is not None and spec.starts_at > t else None
    if not spec.duration or spec.duration <= timedelta(0):
        return None
    tz = _zone(spec.tz)
    it = croniter(spec.cron, _local(t, tz) - _MARGIN)
    for _ in range(_MAX_STEPS):
        start = _aware(it.get_next(datetime), tz)
        if start > t:
            return start
    return None


def occurrences(
    spec: WindowSpec, start: datetime, end: datetime, *, limit: int = 500
) -> list[tuple[datetime, datetime]]:
    """Occurrences overlapping [start, end), oldest first (at most `limit`)."""
    if not spec.recurring:
        if spec.starts_at is None or spec.ends_at is None:
            return []
        return (
            [(spec.starts_at, spec.ends_at)]
            if spec.starts_at < end and spec.ends_at > start
            else []
        )
    if not spec.duration or spec.duration <= timedelta(0):
        return []
    tz = _zone(spec.tz)
    it = croniter(spec.cron, _local(start, tz) - spec.duration - _MARGIN)
    found: list[tuple[datetime, datetime]] = []
    for _ in range(_MAX_STEPS):
        s, e = _span(spec, it.get_next(datetime), tz)
        if s >= end or len(found) >= limit:
            break
        if e > start:
            found.append((s, e))
    return found


def _split(windows: Iterable[WindowSpec]) -> tuple[list[WindowSpec], list[WindowSpec]]:
    deny: list[WindowSpec] = []
    allow: list[WindowSpec] = []
    for w in windows:
        (allow if w.kind == ALLOW else deny).append(w)
    return deny, allow


def blocking(t: datetime, windows: Sequence[WindowSpec]) -> Block | None:
    """Why `t` is not an allowed moment (deny first), or None when it is."""
    if not windows:
        return None
    deny, allow = _split(windows)
    for w in deny:
        occ = occurrence_at(w, t)
        if occ is not None:
            return Block(w, next_allowed(t, windows))
    if allow and not any(occurrence_at(w, t) is not None for w in allow):
        return Block(None, next_allowed(t, windows))
    return None


def next_allowed(
    t: datetime, windows: Sequence[WindowSpec], *, horizon: timedelta = HORIZON
) -> datetime | None:
    """The earliest allowed moment at or after `t`; None if none within `horizon`."""
    if not windows:
        return t
    deny, allow = _split(windows)
    current = t
    for _ in range(_MAX_STEPS):
        if current - t > horizon:
            return None
        moved = False
        for w in deny:
            occ = occurrence_at(w, current)
            if occ is not None:
                current, moved = occ[1], True
        if allow and not any(occurrence_at(w, current) is not None for w in allow):
            starts = [s for w in allow if (s := next_start_after(w, current)) is not None]
            if not starts:
                return None
            current, moved = min(starts), True
        if not moved:
            return current
    return None
