"""The rollout calendar: upcoming phase changes projected from the plans (waiting for
windows), freeze and allow windows, and the changes made, for the page and the iCalendar feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber, TruncDate
from django.utils import timezone

from flags.models import Environment
from rollouts import scheduling, services
from rollouts import windows as windows_mod
from rollouts.models import ApprovalPolicy, FreezeWindow, Phase, Rollout, RolloutEvent
from rollouts.selectors.rows import phases_prefetch

State = Rollout.State


@dataclass
class CalendarEntry:
    kind: str  # "planned" | "freeze" | "allow" | "done"
    start: datetime
    end: datetime | None
    title: str
    rollout: Rollout | None = None
    phase: Phase | None = None
    window: FreezeWindow | None = None
    event: RolloutEvent | None = None
    note: str = ""
    # "done" entries read with `per_day`: how many changes were made that day in all.
    day_done_total: int = 0

    @property
    def uid(self) -> str:
        if self.kind == "planned" and self.rollout and self.phase:
            return f"rollout-{self.rollout.id}-phase-{self.phase.order}@rollcall"
        if self.kind == "done" and self.event:
            return f"event-{self.event.id}@rollcall"
        if self.window:
            return f"window-{self.window.id}-{int(self.start.timestamp())}@rollcall"
        return f"entry-{int(self.start.timestamp())}@rollcall"


CALENDAR_EVENT_KINDS = (
    RolloutEvent.Kind.ADVANCED,
    RolloutEvent.Kind.ROLLED_BACK,
    RolloutEvent.Kind.COMPLETED,
)


CALENDAR_LIMIT = 1000


def calendar_entries(
    *,
    start: datetime,
    end: datetime,
    environment: str = "",
    now: datetime | None = None,
    include_allow: bool = False,
    per_day: int | None = None,
    tz: tzinfo | None = None,
) -> list[CalendarEntry]:
    """Upcoming phase changes (projected from the plans, waiting for windows), freeze
    windows and the changes made, in [start, end), oldest first. 6 queries whatever the data.

    `per_day` bounds the changes made to the first `per_day` of each day (in `tz`), each
    carrying the day's total (`day_done_total`); otherwise at most CALENDAR_LIMIT in all.
    """
    now = now or timezone.now()
    windows = list(FreezeWindow.objects.filter(is_active=True).select_related("environment"))
    env_id: int | None = None
    if environment:
        env_id = Environment.objects.filter(key=environment).values_list("id", flat=True).first()
        if env_id is None:
            return []
        windows = [w for w in windows if w.environment_id in (None, env_id)]
    specs = {w.id: services.window_spec(w) for w in windows}

    def env_specs(environment_id: int) -> list[windows_mod.WindowSpec]:
        return [specs[w.id] for w in windows if w.environment_id in (None, environment_id)]

    entries: list[CalendarEntry] = []
    policies = {p.environment_id: p for p in ApprovalPolicy.objects.all()}
    # Planned: live rollouts driven by the clock.
    # Only what the projection and the entries use (no flag, no list annotations).
    live = (
        Rollout.objects.filter(state__in=(State.SCHEDULED, State.RUNNING))
        .select_related("release", "environment")
        .prefetch_related(phases_prefetch())
        .defer("captured_state", "alert_matchers")
        .order_by("id")
    )
    if env_id is not None:
        live = live.filter(environment_id=env_id)
    if end > now:
        cache: dict[int, list[windows_mod.WindowSpec]] = {}
        for rollout in live:
            phases = list(rollout.phases.all())
            ws = cache.setdefault(rollout.environment_id, env_specs(rollout.environment_id))
            for t in scheduling.projected_timeline(rollout, phases, now, windows=ws):
                at = t.planned_start
                if (
                    t.state != "upcoming"
                    or at is None
                    or not (start <= at < end)
                    or at < now - timedelta(minutes=1)
                ):
                    continue
                pct = t.phase.percentage
                exposure = (
                    f"{pct}%"
                    if pct is not None
                    else (t.phase.segment.name if t.phase.segment else "")
                )
                entries.append(
                    CalendarEntry(
                        kind="planned",
                        start=at,
                        end=None,
                        title=f"{rollout.release} → {t.phase.name}"
                        + (f" ({exposure})" if exposure and exposure not in t.phase.name else ""),
                        rollout=rollout,
                        phase=t.phase,
                        note=rollout.environment.name
                        + (
                            ", needs approval"
                            if services.approval_rule(t.phase, policies.get(rollout.environment_id))
                            else ""
                        ),
                    )
                )
    # Windows.
    for w in windows:
        if w.kind == FreezeWindow.Kind.ALLOW and not include_allow:
            continue
        for s, e in windows_mod.occurrences(specs[w.id], start, end, limit=200):
            where = w.environment.name if w.environment else "all environments"
            entries.append(
                CalendarEntry(
                    kind="freeze" if w.kind == FreezeWindow.Kind.DENY else "allow",
                    start=s,
                    end=e,
                    title=w.name,
                    window=w,
                    note=where,
                )
            )
    # Done: what actually changed.
    done = (
        RolloutEvent.objects.filter(kind__in=CALENDAR_EVENT_KINDS, at__gte=start, at__lt=end)
        .select_related("rollout__release", "rollout__environment")
        .order_by("at", "id")
    )
    if env_id is not None:
        done = done.filter(rollout__environment_id=env_id)
    if per_day is not None:
        day = TruncDate("at", tzinfo=tz or UTC)
        done = done.annotate(
            day_rank=Window(RowNumber(), partition_by=[day], order_by=[F("at").asc(), F("id")]),
            day_total=Window(Count("id"), partition_by=[day]),
        ).filter(day_rank__lte=per_day)
    done = done.only(
        "id", "kind", "at", "to_phase_index", "to_percentage", "rollout__id", "rollout__key",
        "rollout__environment__name", "rollout__release__name", "rollout__release__version",
    )  # fmt: skip
    for event in done[:CALENDAR_LIMIT] if per_day is None else done:
        what = event.get_kind_display()
        if event.kind == RolloutEvent.Kind.ADVANCED and event.to_percentage is not None:
            what = f"phase {(event.to_phase_index or 0) + 1} at {event.to_percentage}%"
        entries.append(
            CalendarEntry(
                kind="done",
                start=event.at,
                end=None,
                title=f"{event.rollout.release}: {what}",
                rollout=event.rollout,
                event=event,
                note=event.rollout.environment.name,
                day_done_total=getattr(event, "day_total", 0),
            )
        )
    entries.sort(key=lambda e: (e.start, e.kind))
    return entries
