"""Rollouts for pages: the filtered list (paged), one rollout's page with its events and
safety facts, and the dashboard's active rollouts and upcoming changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet, Window
from django.utils import timezone

from flags.models import Environment
from rollouts import scheduling
from rollouts.models import Phase, Rollout, RolloutEvent
from rollouts.selectors.rows import (
    RolloutRow,
    _rollouts,
    phases_prefetch,
    relative_in_words,
    rollout_row,
)
from rollouts.selectors.safety import SafetyView, _safety, gated_next_change

State = Rollout.State
LIST_FILTERS = ("state", "strategy", "environment")
EVENT_LOG_LIMIT = 200


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


def _filtered_rollouts(filters: RolloutFilters) -> QuerySet[Rollout]:
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
    return qs


def rollout_list(
    *, filters: RolloutFilters | Mapping[str, Any] | None = None, now: datetime | None = None
) -> list[RolloutRow]:
    """Rollouts for the list page (2 queries whatever the number of rollouts)."""
    now = now or timezone.now()
    if not isinstance(filters, RolloutFilters):
        filters = RolloutFilters.from_mapping(filters or {})
    return [rollout_row(r, list(r.phases.all()), now) for r in _filtered_rollouts(filters)]


ROLLOUTS_PER_PAGE = 50


def rollout_list_page(
    *,
    filters: RolloutFilters | Mapping[str, Any] | None = None,
    page: int | str | None = 1,
    per_page: int = ROLLOUTS_PER_PAGE,
    now: datetime | None = None,
) -> tuple[list[RolloutRow], Page[Rollout]]:
    """One page of the list (a count + 2 queries whatever the number of rollouts); a page
    number out of range gives the last page."""
    now = now or timezone.now()
    if not isinstance(filters, RolloutFilters):
        filters = RolloutFilters.from_mapping(filters or {})
    page_obj = Paginator(_filtered_rollouts(filters), per_page).get_page(page)
    return [rollout_row(r, list(r.phases.all()), now) for r in page_obj.object_list], page_obj


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


@dataclass
class RolloutDetail:
    row: RolloutRow
    events: Sequence[RolloutEvent]  # newest first, at most EVENT_LOG_LIMIT
    event_count: int
    timeline: list[scheduling.PhaseTimes]
    projected_end: datetime | None
    steps: scheduling.ExposureSteps
    now: datetime
    event_percentages: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    safety: SafetyView | None = None
    event_page: int = 1  # the log's page: EVENT_LOG_LIMIT events each, newest first

    @property
    def event_pages(self) -> int:
        return max(1, -(-self.event_count // EVENT_LOG_LIMIT))

    @property
    def older_events_page(self) -> int | None:
        return self.event_page + 1 if self.event_page < self.event_pages else None

    @property
    def newer_events_page(self) -> int | None:
        return self.event_page - 1 if self.event_page > 1 else None

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


def _page_number(page: int | str | None) -> int:
    try:
        return max(1, int(page or 1))
    except (TypeError, ValueError):
        return 1


def rollout_detail(
    *, key: str, now: datetime | None = None, event_page: int | str | None = 1
) -> RolloutDetail:
    """Everything the rollout page shows, in a constant number of queries whatever the number
    of events, holds or windows: rollout (+release, environment, flag, owner), phases, the
    chart's events (only the kinds that change exposure or the clock, few columns), the latest
    EVENT_LOG_LIMIT events for the log (with the total count; `event_page` 2 for the ones
    before them, and so on: a page past the last gives the last), and its safety facts (holds,
    the next phase's approval with decisions, checklists, windows, the environment's policy).

    Raises Rollout.DoesNotExist for an unknown key.
    """
    now = now or timezone.now()
    rollout = (
        Rollout.objects.select_related("release", "environment", "flag", "owner")
        .prefetch_related(phases_prefetch())
        .get(key=key)
    )
    phases = list(rollout.phases.all())
    chart_events = list(
        RolloutEvent.objects.filter(rollout=rollout, kind__in=_CHART_KINDS)
        .only("id", "kind", "at", "to_percentage", "data")
        .order_by("at", "id")
    )
    page = _page_number(event_page)
    events = (
        RolloutEvent.objects.filter(rollout=rollout)
        .select_related("actor")
        # The window counts every event of the rollout before LIMIT applies.
        .annotate(total=Window(Count("id")))
        .order_by("-at", "-id")
    )
    log = list(events[(page - 1) * EVENT_LOG_LIMIT : page * EVENT_LOG_LIMIT])
    if not log and page > 1:  # past the last page: show the last one
        count = RolloutEvent.objects.filter(rollout=rollout).count()
        page = max(1, -(-count // EVENT_LOG_LIMIT))
        log = list(events[(page - 1) * EVENT_LOG_LIMIT : page * EVENT_LOG_LIMIT])
    count = log[0].total if log else 0
    safety = _safety(rollout, phases, now)
    specs = [n.spec for n in safety.windows]
    row = rollout_row(rollout, phases, now)
    row.next_change = gated_next_change(row, safety, now)
    return RolloutDetail(
        row=row,
        events=log,
        event_count=count,
        timeline=scheduling.projected_timeline(rollout, phases, now, windows=specs),
        projected_end=scheduling.projected_end(rollout, phases, now, windows=specs),
        steps=scheduling.exposure_steps(rollout, phases, chart_events),
        now=now,
        safety=safety,
        event_page=page,
    )


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
