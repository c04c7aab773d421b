"""Reads of releases and rollouts for pages, with a constant number of queries.

Each selector owns its `select_related` / `prefetch_related`; what a template shows is
computed here (current phase, exposure, the next change in words), never by a query in a
template loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet, Window
from django.utils import timezone

from flags.models import Environment, Flag
from rollouts import scheduling
from rollouts.models import Phase, Release, Rollout, RolloutEvent

State = Rollout.State

# How each state looks: an icon and a word, never colour alone.
STATE_DISPLAY: dict[str, tuple[str, str]] = {
    State.DRAFT: ("✎", "pill"),
    State.SCHEDULED: ("◷", "pill"),
    State.RUNNING: ("▶", "pill-ok"),
    State.PAUSED: ("‖", "pill-warn"),
    State.HELD: ("⚠", "pill-warn"),
    State.COMPLETED: ("✓", "pill-ok"),
    State.ROLLED_BACK: ("↶", "pill-bad"),
    State.CANCELLED: ("✕", "pill-bad"),
}
LIST_FILTERS = ("state", "strategy", "environment")
EVENT_LOG_LIMIT = 200


# ---------------------------------------------------------------------------------------------
# Words for time


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def duration_in_words(delta: timedelta) -> str:
    """A short, rounded duration: "3 hours", "2 days", "45 minutes", "less than a minute"."""
    seconds = abs(delta.total_seconds())
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours = round(seconds / 3600)
    if hours < 48:
        return _plural(hours, "hour")
    return _plural(round(seconds / 86400), "day")


def relative_in_words(at: datetime, now: datetime) -> str:
    """ "in 3 hours", "2 days ago", "now"."""
    delta = at - now
    if abs(delta.total_seconds()) < 60:
        return "now" if delta.total_seconds() >= -60 else "just now"
    if delta > timedelta(0):
        return f"in {duration_in_words(delta)}"
    return f"{duration_in_words(delta)} ago"


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class NextChange:
    """What happens next to a rollout, in words, and when (if the clock decides)."""

    kind: str  # "time" | "overdue" | "person" | "paused" | "held" | "draft" | "final"
    words: str
    at: datetime | None = None
    phase: Phase | None = None


@dataclass
class RolloutRow:
    rollout: Rollout
    phases: list[Phase]
    current_phase: Phase | None
    exposure: int  # 0-100, what the flag serves now (segment-only phases count as 0)
    exposure_words: str  # "25%", "Beta testers + 5%", "0%"
    next_change: NextChange
    icon: str = ""
    pill: str = "pill"

    @property
    def phase_position(self) -> str:
        """ "2 of 5" (or "not started, 5 phases")."""
        total = len(self.phases)
        index = self.rollout.current_phase_index
        if index < 0:
            return f"not started · {_plural(total, 'phase')}" if total else "no phases yet"
        return f"{index + 1} of {total}"

    @property
    def is_held(self) -> bool:
        return self.rollout.state in (State.PAUSED, State.HELD)


def current_exposure(rollout: Rollout, phases: list[Phase]) -> tuple[int, str, Phase | None]:
    """(percentage, words, current phase) of what the flag serves now."""
    index = rollout.current_phase_index
    phase = phases[index] if 0 <= index < len(phases) else None
    if phase is None or rollout.state == State.ROLLED_BACK:
        return 0, "0%", phase
    pct = phase.percentage or 0
    words = []
    if phase.segment_id is not None:
        words.append(phase.segment.name if phase.segment else "a segment")
    if phase.percentage is not None or not words:
        words.append(f"{pct}%")
    return pct, " + ".join(words), phase


def next_change(rollout: Rollout, phases: list[Phase], now: datetime) -> NextChange:
    """What happens next, in words: "in 3 hours", "waits for a person", ..."""
    state = rollout.state
    index = rollout.current_phase_index
    upcoming = phases[index + 1] if 0 <= index + 1 < len(phases) else None
    due = rollout.next_due_at
    if state in Rollout.FINAL_STATES:
        done = rollout.get_state_display().lower()
        when = rollout.finished_at
        return NextChange("final", f"{done} {relative_in_words(when, now)}" if when else done, when)
    if state == State.DRAFT:
        return NextChange("draft", "not scheduled yet", None, upcoming)
    if state == State.PAUSED:
        return NextChange("paused", "paused: waits for a person to resume", None, upcoming)
    if state == State.HELD:
        return NextChange("held", "held: waits for a person", None, upcoming)
    if state == State.RUNNING and upcoming is None:
        return NextChange("person", "last phase: waits for a person to complete", None)
    if upcoming is not None and upcoming.gate == Phase.Gate.MANUAL:
        if due is not None and due > now:
            # The soak still runs; after it a person decides.
            words = f"soak ends {relative_in_words(due, now)}, then waits for a person"
            return NextChange("person", words, due, upcoming)
        return NextChange("person", "waits for a person", due, upcoming)
    if due is None:
        words = "waits for a person to start" if state == State.SCHEDULED else "waits for a person"
        return NextChange("person", words, None, upcoming)
    if due <= now:
        return NextChange("overdue", "due now (next scheduler tick)", due, upcoming)
    words = relative_in_words(due, now)
    return NextChange(
        "time", f"starts {words}" if state == State.SCHEDULED else words, due, upcoming
    )


def rollout_row(rollout: Rollout, phases: list[Phase], now: datetime) -> RolloutRow:
    exposure, words, current = current_exposure(rollout, phases)
    icon, pill = STATE_DISPLAY.get(rollout.state, ("•", "pill"))
    return RolloutRow(
        rollout=rollout,
        phases=phases,
        current_phase=current,
        exposure=exposure,
        exposure_words=words,
        next_change=next_change(rollout, phases, now),
        icon=icon,
        pill=pill,
    )


def _phases_prefetch() -> Prefetch:
    return Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order"))


def _rollouts() -> QuerySet[Rollout]:
    return Rollout.objects.select_related("release", "environment", "flag").prefetch_related(
        _phases_prefetch()
    )


# ---------------------------------------------------------------------------------------------
# List


@dataclass(frozen=True)
class RolloutFilters:
    state: str = ""
    strategy: str = ""
    environment: str = ""
    release: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RolloutFilters:
        state = data.get("state") or ""
        strategy = data.get("strategy") or ""
        release = data.get("release") or None
        return cls(
            state=state if state in {*State.values, "active", "final"} else "",
            strategy=strategy if strategy in Rollout.Strategy.values else "",
            environment=str(data.get("environment") or ""),
            release=int(release) if release and str(release).isdigit() else None,
        )


def rollout_list(
    *, filters: RolloutFilters | Mapping[str, Any] | None = None, now: datetime | None = None
) -> list[RolloutRow]:
    """Rollouts for the list page (2 queries whatever the number of rollouts)."""
    now = now or timezone.now()
    if not isinstance(filters, RolloutFilters):
        filters = RolloutFilters.from_mapping(filters or {})
    qs = _rollouts()
    if filters.state == "active":
        qs = qs.filter(state__in=Rollout.ACTIVE_STATES)
    elif filters.state == "final":
        qs = qs.filter(state__in=Rollout.FINAL_STATES)
    elif filters.state:
        qs = qs.filter(state=filters.state)
    if filters.strategy:
        qs = qs.filter(strategy=filters.strategy)
    if filters.environment:
        qs = qs.filter(environment__key=filters.environment)
    if filters.release:
        qs = qs.filter(release_id=filters.release)
    return [rollout_row(r, list(r.phases.all()), now) for r in qs]


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    """Options of the list filters (1 query)."""
    return {
        "state": [
            ("active", "Active (scheduled, running, paused, held)"),
            ("final", "Finished"),
            *State.choices,
        ],
        "strategy": list(Rollout.Strategy.choices),
        "environment": list(Environment.objects.values_list("key", "name")),
    }


# ---------------------------------------------------------------------------------------------
# Detail


@dataclass
class RolloutDetail:
    row: RolloutRow
    events: list[RolloutEvent]  # newest first, at most EVENT_LOG_LIMIT
    event_count: int
    timeline: list[scheduling.PhaseTimes]
    projected_end: datetime | None
    steps: scheduling.ExposureSteps
    now: datetime
    event_percentages: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)

    @property
    def rollout(self) -> Rollout:
        return self.row.rollout

    @property
    def phases(self) -> list[Phase]:
        return self.row.phases


# Event kinds that move exposure or stop/start the clock: all the exposure chart needs.
_CHART_KINDS = (
    RolloutEvent.Kind.ADVANCED,
    RolloutEvent.Kind.ROLLED_BACK,
    RolloutEvent.Kind.PAUSED,
    RolloutEvent.Kind.HELD,
    RolloutEvent.Kind.RESUMED,
    RolloutEvent.Kind.HOLD_CLEARED,
    RolloutEvent.Kind.COMPLETED,
    RolloutEvent.Kind.CANCELLED,
)


def rollout_detail(*, key: str, now: datetime | None = None) -> RolloutDetail:
    """Everything the rollout page shows, in 4 queries whatever the number of events:
    rollout (+release, environment, flag, owner), phases, the chart's events (only the kinds
    that change exposure or the clock, few columns), and the latest EVENT_LOG_LIMIT events
    for the log (with the total count).

    Raises Rollout.DoesNotExist for an unknown key.
    """
    now = now or timezone.now()
    rollout = (
        Rollout.objects.select_related("release", "environment", "flag", "owner")
        .prefetch_related(_phases_prefetch())
        .get(key=key)
    )
    phases = list(rollout.phases.all())
    chart_events = list(
        RolloutEvent.objects.filter(rollout=rollout, kind__in=_CHART_KINDS)
        .only("id", "kind", "at", "to_percentage")
        .order_by("at", "id")
    )
    log = list(
        RolloutEvent.objects.filter(rollout=rollout)
        .select_related("actor")
        # The window counts every event of the rollout before LIMIT applies.
        .annotate(total=Window(Count("id")))
        .order_by("-at", "-id")[:EVENT_LOG_LIMIT]
    )
    count = log[0].total if log else 0
    return RolloutDetail(
        row=rollout_row(rollout, phases, now),
        events=log,
        event_count=count,
        timeline=scheduling.projected_timeline(rollout, phases, now),
        projected_end=scheduling.projected_end(rollout, phases, now),
        steps=scheduling.exposure_steps(rollout, phases, chart_events),
        now=now,
    )


# ---------------------------------------------------------------------------------------------
# Releases


@dataclass
class ReleaseRow:
    release: Release
    rollouts: list[RolloutRow]


def release_list(*, now: datetime | None = None) -> list[ReleaseRow]:
    """Releases with their rollouts per environment (3 queries)."""
    now = now or timezone.now()
    releases = Release.objects.select_related("owner").prefetch_related(
        Prefetch(
            "rollouts",
            queryset=Rollout.objects.select_related("environment", "flag")
            .prefetch_related(_phases_prefetch())
            .order_by("environment__order", "-created_at"),
        )
    )
    return [
        ReleaseRow(r, [rollout_row(x, list(x.phases.all()), now) for x in r.rollouts.all()])
        for r in releases
    ]


def release_detail(*, pk: int, now: datetime | None = None) -> ReleaseRow:
    """One release with its flags and its rollouts per environment (4 queries).

    Raises Release.DoesNotExist for an unknown id.
    """
    now = now or timezone.now()
    release = (
        Release.objects.select_related("owner")
        .prefetch_related(
            Prefetch("flags", queryset=Flag.objects.order_by("key")),
            Prefetch(
                "rollouts",
                queryset=Rollout.objects.select_related("environment", "flag")
                .prefetch_related(_phases_prefetch())
                .order_by("environment__order", "-created_at"),
            ),
        )
        .get(pk=pk)
    )
    return ReleaseRow(
        release, [rollout_row(x, list(x.phases.all()), now) for x in release.rollouts.all()]
    )


# ---------------------------------------------------------------------------------------------
# Dashboard


@dataclass
class UpcomingChange:
    row: RolloutRow
    at: datetime
    phase: Phase | None
    words: str


def active_rollouts(
    *, now: datetime | None = None, limit: int = 12
) -> tuple[list[RolloutRow], int]:
    """Running, paused and held rollouts (most recently started first) and how many in all."""
    now = now or timezone.now()
    live = (State.RUNNING, State.PAUSED, State.HELD)
    total = Rollout.objects.filter(state__in=live).aggregate(n=Count("id"))["n"]
    qs = _rollouts().filter(state__in=live).order_by("-started_at", "-created_at")[:limit]
    return [rollout_row(r, list(r.phases.all()), now) for r in qs], total


def upcoming_changes(*, now: datetime | None = None, limit: int = 10) -> list[UpcomingChange]:
    """The next phase changes the scheduler will make, soonest first."""
    now = now or timezone.now()
    qs = (
        _rollouts()
        .filter(
            Q(state=State.SCHEDULED) | Q(state=State.RUNNING),
            next_due_at__isnull=False,
        )
        .order_by("next_due_at")[:limit]
    )
    changes = []
    for rollout in qs:
        row = rollout_row(rollout, list(rollout.phases.all()), now)
        at = rollout.next_due_at
        assert at is not None  # filtered above
        phase = row.next_change.phase
        if rollout.state == State.SCHEDULED and row.phases:
            phase = row.phases[0]
        words = relative_in_words(at, now) if at > now else "due now"
        if phase is not None and phase.gate == Phase.Gate.MANUAL:
            words += ", then waits for a person"
        changes.append(UpcomingChange(row=row, at=at, phase=phase, words=words))
    return changes
