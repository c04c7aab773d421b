"""Reads for support staff: the changelog with live exposure, customer lookup, release notes.

Every list here runs a fixed number of queries whatever the number of releases, rollouts,
phases or links (prefetches and subqueries, never a query per row); exposure is derived from
the rollout's stored state, its applied phases and the event that put it in that state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.safestring import SafeString

from comms.models import DocLink
from flags.models import Environment, Flag
from rollouts.models import Phase, Release, Rollout, RolloutEvent

PAGE_SIZE = 20
EVENTS_PER_ROLLOUT = 10
FEED_SIZE = 50
RUNBOOK_KINDS = {DocLink.Kind.RUNBOOK}

# What a phase's percentage means for each strategy, in words support staff can repeat.
_AUDIENCE_WORDS = {
    Rollout.Strategy.FEATURE_FLAG: "of users",
    Rollout.Strategy.CANARY: "of traffic to the canary",
    Rollout.Strategy.BLUE_GREEN: "of traffic on the new slot",
    Rollout.Strategy.ROLLING: "of hosts on the new version",
    Rollout.Strategy.SHADOW: "of requests mirrored (users unaffected)",
}


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


# --------------------------------------------------------------------------------------------
# Exposure of one rollout


def phase_audience(rollout: Rollout, phase: Phase | None) -> str:
    """Who a phase exposes, as `rollouts.strategies.exposure_rules` applies it.

    Percentage and segment are ORed: "Beta testers and 5% of users". Blue/green is binary:
    0 keeps blue live (a segment previews green), 100 switches everyone to green.
    """
    if phase is None:
        return "nobody yet"
    segment = phase.segment.name if phase.segment_id and phase.segment else None
    pct = phase.percentage or 0
    if rollout.strategy == Rollout.Strategy.BLUE_GREEN:
        if pct >= 100:
            return "everyone on green (the new version)"
        if segment:
            return f"{segment} preview green; everyone else stays on blue"
        return "everyone on blue (the old version)"
    words = _AUDIENCE_WORDS.get(rollout.strategy, "of users")
    if segment and pct >= 100:
        segment = None
    if segment and pct > 0:
        return f"{segment} and {pct}% {words}"
    if segment:
        return f"everyone in {segment}"
    return f"{pct}% {words}"


# State -> (pill class, icon): colour is never the only signal, the icon and words go along.
_STATE_STYLE = {
    "draft": ("", "✎"),
    "scheduled": ("", "…"),
    "running": ("pill-ok", "▶"),
    "paused": ("pill-warn", "‖"),
    "held": ("pill-warn", "⚠"),
    "completed": ("pill-ok", "✓"),
    "rolled_back": ("pill-bad", "↩"),
    "cancelled": ("", "✕"),
}


@dataclass(frozen=True)
class Exposure:
    """What one rollout means for customers right now, derived from its stored facts."""

    state: str
    state_label: str
    text: str  # one sentence support staff can read out
    percentage: int | None  # share exposed now (progress bar), None when unknown/not applicable
    audience: str  # e.g. "25% of users", "Beta testers"
    phase_name: str
    phase_number: int | None  # 1-based, None before the first phase
    phase_count: int
    since: datetime | None
    reason: str
    next_at: datetime | None
    is_live: bool  # some customers have the new behaviour now
    is_problem: bool  # held or rolled back: support should know before the call

    @property
    def pill_class(self) -> str:
        return _STATE_STYLE.get(self.state, ("", ""))[0]

    @property
    def icon(self) -> str:
        return _STATE_STYLE.get(self.state, ("", "•"))[1]


def rollout_exposure(
    rollout: Rollout,
    phases: Sequence[Phase],
    *,
    state_event_at: datetime | None = None,
    state_event_reason: str = "",
    now: datetime | None = None,
) -> Exposure:
    """Exposure of a rollout in every state.

    `state_event_at` / `state_event_reason` come from the latest event whose kind is the
    rollout's state (held, paused, rolled back, ...): "held since 10:42 (error rate)".
    """
    now = now or timezone.now()
    tz = rollout.timezone
    count = len(phases)
    index = rollout.current_phase_index
    current = phases[index] if 0 <= index < count else None
    number = index + 1 if current is not None else None
    name = current.name if current is not None else ""
    audience = phase_audience(rollout, current)
    pct = _effective_percentage(current)
    state = rollout.state
    label = rollout.get_state_display()
    reason = state_event_reason or ""
    because = f" ({reason})" if reason else ""
    phase_words = f"phase {number} of {count} ({name})" if current is not None else ""
    S = Rollout.State

    def when(at: datetime | None) -> str:
        return format_when(at, tz, now=now)

    if state == S.DRAFT:
        return Exposure(
            state, label, "Planned, not scheduled yet: nobody has it.", 0, "nobody yet",
            "", None, count, None, "", None, False, False,
        )  # fmt: skip
    if state == S.SCHEDULED:
        start = rollout.next_due_at or (phases[0].start_at if phases else None)
        text = (
            f"Scheduled for {when(start)}: nobody has it yet."
            if start
            else "Scheduled; starts when a release manager starts it. Nobody has it yet."
        )
        return Exposure(
            state, label, text, 0, "nobody yet", "", None, count,
            state_event_at, reason, start, False, False,
        )  # fmt: skip
    if state == S.RUNNING:
        since = rollout.phase_started_at or rollout.started_at
        text = f"Live to {audience}, {phase_words}, since {when(since)}."
        if rollout.next_due_at:
            text += f" Next phase {when(rollout.next_due_at)}."
        elif current is not None and index + 1 < count:
            text += " The next phase waits for a person."
        return Exposure(
            state, label, text, pct, audience, name, number, count,
            since, "", rollout.next_due_at, _live(current), False,
        )  # fmt: skip
    if state in (S.PAUSED, S.HELD):
        verb = "Held" if state == S.HELD else "Paused"
        since = state_event_at or getattr(rollout, "paused_at", None) or rollout.phase_started_at
        text = f"{verb} since {when(since)}{because}. Exposure stays at {audience}"
        text += f", {phase_words}." if phase_words else "."
        return Exposure(
            state, label, text, pct, audience, name, number, count,
            since, reason, None, _live(current), state == S.HELD,
        )  # fmt: skip
    if state == S.COMPLETED:
        at = rollout.finished_at or state_event_at
        text = f"Completed at {when(at)}: {audience}."
        return Exposure(
            state, label, text, pct, audience, name, number, count,
            at, reason, None, _live(current), False,
        )  # fmt: skip
    if state == S.ROLLED_BACK:
        at = state_event_at or rollout.finished_at
        text = (
            f"Rolled back at {when(at)}{because}. The flag is back to its state before the "
            "rollout: nobody new has it."
        )
        return Exposure(
            state, label, text, 0, "nobody (rolled back)", name, number, count,
            at, reason, None, False, True,
        )  # fmt: skip
    # Cancelled: the plan stopped; a rollout cancelled while live leaves the flag's exposure
    # as it was (rollouts.services.rollout_cancel), so customers may still have it.
    at = state_event_at or rollout.finished_at
    if current is None:
        text = f"Cancelled at {when(at)}{because} before it started: nobody has it."
        return Exposure(
            state, label, text, 0, "nobody", "", None, count,
            at, reason, None, False, False,
        )  # fmt: skip
    text = f"Cancelled at {when(at)}{because}. The flag stays at {audience} ({phase_words})."
    return Exposure(
        state, label, text, pct, audience, name, number, count,
        at, reason, None, _live(current), False,
    )  # fmt: skip


def _effective_percentage(phase: Phase | None) -> int | None:
    """The share of everyone exposed (progress bar); a segment adds an unknown share."""
    if phase is None:
        return 0
    return phase.percentage or 0


def _live(phase: Phase | None) -> bool:
    if phase is None:
        return False
    return bool(phase.percentage) or bool(phase.segment_id)


# --------------------------------------------------------------------------------------------
# Timeline of phases


@dataclass(frozen=True)
class TimelineRow:
    name: str
    audience: str
    start: datetime | None  # actual start when applied, else the projected/planned start
    end: datetime | None
    state: str  # done | current | upcoming
    waits_for_person: bool
    start_text: str


def rollout_timeline(
    rollout: Rollout, phases: Sequence[Phase], *, now: datetime
) -> list[TimelineRow]:
    """Past and upcoming phases; projections come from rollouts.scheduling when available."""
    rows: list[TimelineRow] = []
    try:
        from rollouts.scheduling import projected_timeline
    except ImportError:
        projected_timeline = None  # the scheduler module is not there yet
    projected: list[Any] = []
    if projected_timeline is not None and phases:
        try:
            projected = list(projected_timeline(rollout, list(phases), now))
        except Exception:  # noqa: BLE001 - a projection problem must not break the changelog
            projected = []
    if projected:
        for item in projected:
            phase = item.phase
            start = item.actual_start or item.planned_start
            waits = (
                item.actual_start is None
                and item.planned_start is None
                and phase.gate == Phase.Gate.MANUAL
            )
            rows.append(
                TimelineRow(
                    name=phase.name,
                    audience=phase_audience(rollout, phase),
                    start=start,
                    end=item.end,
                    state=item.state,
                    waits_for_person=waits,
                    start_text=_start_text(
                        rollout, item.actual_start, item.planned_start, waits, now
                    ),
                )
            )
        return _final_states(rollout, rows)
    index = rollout.current_phase_index
    for i, phase in enumerate(phases):
        if phase.applied_at is not None and i < index:
            state = "done"
        elif i == index and rollout.state not in Rollout.FINAL_STATES:
            state = "current"
        elif phase.applied_at is not None:
            state = "done"
        else:
            state = "upcoming"
        planned = phase.start_at if phase.start_rule == Phase.StartRule.AT else None
        if i == index + 1 and rollout.next_due_at and not rollout.is_final:
            planned = rollout.next_due_at
        waits = phase.applied_at is None and planned is None and phase.gate == Phase.Gate.MANUAL
        next_applied = phases[i + 1].applied_at if i + 1 < len(phases) else None
        rows.append(
            TimelineRow(
                name=phase.name,
                audience=phase_audience(rollout, phase),
                start=phase.applied_at or planned,
                end=next_applied,
                state=state,
                waits_for_person=waits,
                start_text=_start_text(rollout, phase.applied_at, planned, waits, now),
            )
        )
    return _final_states(rollout, rows)


def _start_text(
    rollout: Rollout, actual: datetime | None, planned: datetime | None, waits: bool, now: datetime
) -> str:
    if actual is not None:
        return f"started {format_when(actual, rollout.timezone, now=now)}"
    if planned is not None:
        return f"planned {format_when(planned, rollout.timezone, now=now)}"
    if waits:
        return "waits for a person"
    return "after the previous phase's soak"


def _final_states(rollout: Rollout, rows: list[TimelineRow]) -> list[TimelineRow]:
    """A finished rollout has no current or upcoming phase: the rest will never run."""
    if rollout.state == Rollout.State.DRAFT:
        # Projections of a draft are "if started now": not a date to tell a customer.
        return [
            TimelineRow(r.name, r.audience, None, None, "upcoming", False, "not scheduled yet")
            for r in rows
        ]
    if not rollout.is_final:
        return rows
    out = []
    for row in rows:
        if row.state in {"current", "upcoming"} and not row.start_text.startswith("started"):
            row = TimelineRow(row.name, row.audience, None, None, "skipped", False, "will not run")
        elif row.state == "current":
            row = TimelineRow(
                row.name, row.audience, row.start, row.end, "done", False, row.start_text
            )
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------
# The changelog


@dataclass(frozen=True)
class ChangelogFilters:
    q: str = ""
    environment: str = ""  # environment key
    label: str = ""
    status: str = ""  # a Rollout.State value
    date_from: date | None = None
    date_to: date | None = None
    page: int | str = 1


@dataclass
class RolloutView:
    rollout: Rollout
    exposure: Exposure
    timeline: list[TimelineRow]
    events: list[RolloutEvent] = field(default_factory=list)


@dataclass
class ReleaseView:
    release: Release
    changelog_html: SafeString
    known_issues_html: SafeString
    doc_links: list[DocLink]  # the release's and its flags' links, runbooks excluded
    runbooks: list[DocLink]
    broken_links: list[DocLink]
    rollouts: list[RolloutView]
    flags: list[Flag] = field(default_factory=list)
    notices: list[Any] = field(default_factory=list)

    @property
    def is_problem(self) -> bool:
        return any(r.exposure.is_problem for r in self.rollouts)

    @property
    def is_live(self) -> bool:
        return any(r.exposure.is_live for r in self.rollouts)


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


def _rollouts_queryset(*, environment: str = "", with_events: bool = False) -> QuerySet[Rollout]:
    qs = (
        Rollout.objects.select_related("environment", "flag")
        .annotate(**_state_event_subqueries())
        .prefetch_related(
            Prefetch(
                "phases",
                queryset=Phase.objects.select_related("segment").order_by("order"),
            )
        )
        .order_by("environment__order", "environment__key", "-created_at")
    )
    if environment:
        qs = qs.filter(environment__key=environment)
    if with_events:
        qs = qs.prefetch_related(
            Prefetch(
                "events",
                # The latest few per rollout (a sliced prefetch is one windowed query).
                queryset=RolloutEvent.objects.select_related("actor").order_by("-at", "-id")[
                    :EVENTS_PER_ROLLOUT
                ],
                to_attr="recent_events",  # a sliced prefetch needs its own attribute
            )
        )
    return qs


def _release_prefetches(*, environment: str = "", with_events: bool = False) -> list[Prefetch]:
    return [
        Prefetch(
            "rollouts",
            queryset=_rollouts_queryset(environment=environment, with_events=with_events),
        ),
        Prefetch("doc_links", queryset=DocLink.objects.order_by("kind", "title")),
        Prefetch(
            "flags",
            queryset=Flag.objects.only("id", "key", "name").prefetch_related(
                Prefetch("doc_links", queryset=DocLink.objects.order_by("kind", "title"))
            ),
        ),
    ]


def changelog_queryset(filters: ChangelogFilters) -> QuerySet[Release]:
    qs = Release.objects.select_related("owner").order_by("-created_at", "-id")
    q = filters.q.strip()
    if q:
        for word in q.split():
            qs = qs.filter(
                Q(name__icontains=word)
                | Q(version__icontains=word)
                | Q(summary__icontains=word)
                | Q(changelog__icontains=word)
            )
    if filters.label:
        qs = qs.filter(label=filters.label)
    if filters.environment or filters.status:
        rollouts = Rollout.objects.filter(release=OuterRef("pk"))
        if filters.environment:
            rollouts = rollouts.filter(environment__key=filters.environment)
        if filters.status:
            rollouts = rollouts.filter(state=filters.status)
        qs = qs.filter(Exists(rollouts))
    if filters.date_from or filters.date_to:
        # "What changed between these days": created then, or any rollout moved then.
        tz = timezone.get_current_timezone()
        start = (
            datetime.combine(filters.date_from, time.min, tzinfo=tz) if filters.date_from else None
        )
        end = (
            datetime.combine(filters.date_to + timedelta(days=1), time.min, tzinfo=tz)
            if filters.date_to
            else None
        )
        created = Q()
        events = RolloutEvent.objects.filter(rollout__release=OuterRef("pk"))
        if start:
            created &= Q(created_at__gte=start)
            events = events.filter(at__gte=start)
        if end:
            created &= Q(created_at__lt=end)
            events = events.filter(at__lt=end)
        qs = qs.filter(created | Exists(events))
    return qs


def _release_view(release: Release, *, now: datetime, with_events: bool = False) -> ReleaseView:
    links = list(release.doc_links.all())
    flags = list(release.flags.all())
    for flag in flags:
        links.extend(flag.doc_links.all())
    rollouts = []
    for rollout in release.rollouts.all():
        phases = list(rollout.phases.all())
        exposure = rollout_exposure(
            rollout,
            phases,
            state_event_at=getattr(rollout, "state_event_at", None),
            state_event_reason=getattr(rollout, "state_event_reason", None) or "",
            now=now,
        )
        rollouts.append(
            RolloutView(
                rollout=rollout,
                exposure=exposure,
                timeline=rollout_timeline(rollout, phases, now=now),
                events=list(getattr(rollout, "recent_events", [])) if with_events else [],
            )
        )
    return ReleaseView(
        release=release,
        changelog_html=_markdown(release.changelog),
        known_issues_html=_markdown(release.known_issues),
        doc_links=[link for link in links if link.kind not in RUNBOOK_KINDS],
        runbooks=[link for link in links if link.kind in RUNBOOK_KINDS],
        broken_links=[link for link in links if link.status == DocLink.Status.BROKEN],
        rollouts=rollouts,
        flags=flags,
    )


@dataclass
class ChangelogPage:
    page: Page
    releases: list[ReleaseView]


def changelog(*, filters: ChangelogFilters, now: datetime | None = None) -> ChangelogPage:
    """Releases newest first with live exposure per environment; constant query count."""
    now = now or timezone.now()
    qs = changelog_queryset(filters).prefetch_related(
        *_release_prefetches(environment=filters.environment)
    )
    page = Paginator(qs, PAGE_SIZE).get_page(filters.page)
    views = [_release_view(release, now=now) for release in page.object_list]
    _attach_notices(views)
    return ChangelogPage(page=page, releases=views)


def release_for_support(*, release_id: int, now: datetime | None = None) -> ReleaseView | None:
    now = now or timezone.now()
    release = (
        Release.objects.select_related("owner")
        .prefetch_related(*_release_prefetches(with_events=True))
        .filter(pk=release_id)
        .first()
    )
    if release is None:
        return None
    view = _release_view(release, now=now, with_events=True)
    _attach_notices([view])
    return view


NOTICES_PER_RELEASE = 10


def _attach_notices(views: list[ReleaseView]) -> None:
    """Notices about each release (its own or its rollouts'), newest first, drafts left out."""
    from comms.models import Notice

    release_ids = [v.release.pk for v in views]
    if not release_ids:
        return
    rows = (
        Notice.objects.filter(
            Q(release_id__in=release_ids) | Q(rollout__release_id__in=release_ids)
        )
        .exclude(state__in=[Notice.State.DRAFT, Notice.State.CANCELLED])
        .select_related("audience", "rollout__environment")
        .only(
            "id", "subject", "rendered_subject", "state", "event", "send_at", "finished_at",
            "created_at", "release_id", "rollout_id", "audience__name", "audience__kind",
            "rollout__release_id", "rollout__environment__name",
        )
        .order_by("-created_at", "-id")
    )  # fmt: skip
    by_release: dict[int, list[Any]] = {}
    for notice in rows:
        release_id = notice.release_id or (notice.rollout.release_id if notice.rollout else None)
        bucket = by_release.setdefault(release_id, [])
        if len(bucket) < NOTICES_PER_RELEASE:
            bucket.append(notice)
    for view in views:
        view.notices = by_release.get(view.release.pk, [])


def environments() -> list[Environment]:
    return list(Environment.objects.order_by("order", "key"))


# --------------------------------------------------------------------------------------------
# Dashboard panel


@dataclass
class SupportSummary:
    changed: list[Release]
    mid_rollout: list[tuple[Rollout, Exposure]]
    problems: list[tuple[Rollout, Exposure]]
    broken_links: list[DocLink]


def support_summary(*, now: datetime | None = None, limit: int = 8) -> SupportSummary:
    """Last 7 days of changes, what is rolling out, what is held or rolled back, broken links."""
    now = now or timezone.now()
    week_ago = now - timedelta(days=7)
    moved = RolloutEvent.objects.filter(rollout__release=OuterRef("pk"), at__gte=week_ago)
    changed = list(
        Release.objects.filter(Q(created_at__gte=week_ago) | Exists(moved)).order_by(
            "-created_at", "-id"
        )[:limit]
    )
    base = (
        Rollout.objects.select_related("release", "environment")
        .annotate(**_state_event_subqueries())
        .prefetch_related(
            Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order"))
        )
    )
    S = Rollout.State
    active = list(base.filter(state=S.RUNNING).order_by("-phase_started_at", "-id")[:limit])
    problem_rows = list(
        base.filter(
            Q(state__in=[S.HELD, S.PAUSED])
            | Q(state=S.ROLLED_BACK, finished_at__gte=week_ago)
            | Q(state=S.ROLLED_BACK, finished_at__isnull=True, updated_at__gte=week_ago)
        ).order_by("-updated_at", "-id")[:limit]
    )

    def expose(rollout: Rollout) -> tuple[Rollout, Exposure]:
        return rollout, rollout_exposure(
            rollout,
            list(rollout.phases.all()),
            state_event_at=getattr(rollout, "state_event_at", None),
            state_event_reason=getattr(rollout, "state_event_reason", None) or "",
            now=now,
        )

    broken = list(
        DocLink.objects.filter(status=DocLink.Status.BROKEN)
        .select_related("release", "flag")
        .order_by("-checked_at", "id")[:limit]
    )
    return SupportSummary(
        changed=changed,
        mid_rollout=[expose(r) for r in active],
        problems=[expose(r) for r in problem_rows],
        broken_links=broken,
    )


# --------------------------------------------------------------------------------------------
# Public release notes


@dataclass
class PublicRelease:
    """Only what may leave the company: no known issues, no internal links, no environments."""

    release: Release
    changelog_html: SafeString
    doc_links: list[DocLink]


def _public_queryset() -> QuerySet[Release]:
    return (
        Release.objects.filter(is_public=True)
        .only("id", "name", "version", "summary", "changelog", "label", "created_at", "updated_at")
        .prefetch_related(
            Prefetch(
                "doc_links",
                queryset=DocLink.objects.filter(visibility=DocLink.Visibility.PUBLIC).order_by(
                    "kind", "title"
                ),
            )
        )
        .order_by("-created_at", "-id")
    )


def _public_view(release: Release) -> PublicRelease:
    return PublicRelease(
        release=release,
        changelog_html=_markdown(release.changelog),
        doc_links=list(release.doc_links.all()),
    )


def public_releases(*, page: int | str = 1, label: str = "") -> tuple[Page, list[PublicRelease]]:
    qs = _public_queryset()
    if label:
        qs = qs.filter(label=label)
    paged = Paginator(qs, PAGE_SIZE).get_page(page)
    return paged, [_public_view(r) for r in paged.object_list]


def public_release(*, release_id: int) -> PublicRelease | None:
    release = _public_queryset().filter(pk=release_id).first()
    return _public_view(release) if release is not None else None


def public_feed_releases(*, label: str = "", limit: int = FEED_SIZE) -> list[PublicRelease]:
    qs = _public_queryset()
    if label:
        qs = qs.filter(label=label)
    return [_public_view(r) for r in qs[:limit]]


def feed_releases(
    *, environment: str = "", label: str = "", limit: int = FEED_SIZE
) -> list[ReleaseView]:
    """The support feed: like the changelog's first page, without pagination."""
    now = timezone.now()
    filters = ChangelogFilters(environment=environment, label=label)
    qs = changelog_queryset(filters).prefetch_related(*_release_prefetches(environment=environment))
    return [_release_view(r, now=now) for r in qs[:limit]]


# --------------------------------------------------------------------------------------------
# Customer lookup
#
# The answer must never disagree with what services get over OFREP, so it is computed by the
# very function the OFREP endpoint answers with (`flags.ofrep.evaluate_one`), on the same
# compiled snapshot (`flags.snapshot`) and the same context mapping
# (`flags.engine.context_from_ofrep`).

LOOKUP_RECENT_DAYS = 30
_LOOKUP_STATES = (
    Rollout.State.RUNNING,
    Rollout.State.PAUSED,
    Rollout.State.HELD,
    Rollout.State.COMPLETED,
    Rollout.State.ROLLED_BACK,
)


@dataclass(frozen=True)
class FlagAnswer:
    key: str
    name: str
    value: Any  # as OFREP answers it; absent -> NO_VALUE
    has_value: bool
    variant: str
    reason: str
    error_code: str
    error_details: str

    @property
    def value_text(self) -> str:
        if not self.has_value:
            return "(no value: the caller's default)"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, (dict, list)):
            return json.dumps(self.value, sort_keys=True)
        return str(self.value)


@dataclass(frozen=True)
class Membership:
    rollout: Rollout
    exposure: Exposure
    is_in: bool | None  # None: the flag answered an error for this customer
    since: datetime | None
    text: str


@dataclass
class EnvironmentAnswer:
    environment: Environment
    flags: list[FlagAnswer]
    memberships: list[Membership]
    error: str = ""

    @property
    def rollouts_in(self) -> list[Membership]:
        return [m for m in self.memberships if m.is_in]


@dataclass
class LookupResult:
    context: dict[str, Any]
    environments: list[EnvironmentAnswer]


def _lookup_rollouts(environment_ids: list[int], *, now: datetime) -> dict[int, list[Rollout]]:
    """The newest rollout of each flag per environment, if it may matter to a customer now."""
    recent = now - timedelta(days=LOOKUP_RECENT_DAYS)
    rows = (
        Rollout.objects.filter(environment_id__in=environment_ids, state__in=_LOOKUP_STATES)
        .filter(
            Q(state__in=Rollout.ACTIVE_STATES)
            | Q(finished_at__gte=recent)
            | Q(finished_at__isnull=True, updated_at__gte=recent)
        )
        .select_related("release", "flag", "environment")
        .annotate(**_state_event_subqueries())
        .prefetch_related(
            Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order"))
        )
        .order_by("-created_at", "-id")
    )
    out: dict[int, list[Rollout]] = {}
    seen: set[tuple[int, int]] = set()
    for rollout in rows:
        pair = (rollout.environment_id, rollout.flag_id)
        if pair in seen:
            continue  # an older rollout of the same flag no longer decides anything
        seen.add(pair)
        out.setdefault(rollout.environment_id, []).append(rollout)
    return out


def _is_in(rollout: Rollout, answer: FlagAnswer | None) -> bool | None:
    if answer is None or answer.error_code:
        return None
    if rollout.strategy == Rollout.Strategy.BLUE_GREEN:
        from rollouts.strategies import GREEN

        return answer.has_value and answer.value == GREEN
    return answer.value is True


def _entered_at(
    rollout: Rollout, phases: Sequence[Phase], unleash_context: Mapping[str, Any]
) -> datetime | None:
    """When this customer most likely got the new behaviour: the first applied phase whose
    percentage covers their bucket (Unleash hashing, group id = flag key), else the first
    applied phase with an audience segment (they are in through it), else the start."""
    from flags import engine
    from rollouts.strategies import STRATEGIES

    applied = [p for i, p in enumerate(phases) if p.applied_at and i <= rollout.current_phase_index]
    if not applied:
        return rollout.started_at
    spec = STRATEGIES.get(rollout.strategy)
    stickiness = spec.stickiness if spec else "default"
    props = unleash_context.get("properties") or {}
    if stickiness == "default":
        value = unleash_context.get("userId") or unleash_context.get("sessionId")
    elif stickiness in ("userId", "sessionId"):
        value = unleash_context.get(stickiness)
    elif stickiness == "random":
        value = None
    else:
        value = props.get(stickiness)
    if value:
        customer_bucket = engine.bucket(rollout.flag.key, str(value))
        for phase in applied:
            if (phase.percentage or 0) >= customer_bucket:
                return phase.applied_at
    for phase in applied:
        if phase.segment_id:
            return phase.applied_at
    return applied[0].applied_at


def _membership(
    rollout: Rollout,
    answer: FlagAnswer | None,
    unleash_context: Mapping[str, Any],
    *,
    now: datetime,
) -> Membership:
    phases = list(rollout.phases.all())
    exposure = rollout_exposure(
        rollout,
        phases,
        state_event_at=getattr(rollout, "state_event_at", None),
        state_event_reason=getattr(rollout, "state_event_reason", None) or "",
        now=now,
    )
    is_in = _is_in(rollout, answer)
    strategy = rollout.get_strategy_display().lower()
    step = (
        f"phase {exposure.phase_number} of {exposure.phase_count} ({exposure.phase_name})"
        if exposure.phase_number
        else ""
    )
    since = None
    if is_in is None:
        text = f"Unknown: the flag answered {answer.error_code if answer else 'nothing'}."
    elif is_in:
        since = _entered_at(rollout, phases, unleash_context)
        when = format_when(since, rollout.timezone, now=now)
        text = f"In the {strategy} since {when}" if since else f"In the {strategy}"
        text += f", {step}" if step else ""
        text += "."
        if rollout.state == Rollout.State.COMPLETED:
            done_at = format_when(exposure.since, rollout.timezone, now=now)
            text = f"Has it: the {strategy} completed at {done_at}."
        elif rollout.state in (Rollout.State.HELD, Rollout.State.PAUSED):
            text += f" {exposure.text}"
    else:
        text = f"Not in the {strategy}"
        if rollout.state == Rollout.State.ROLLED_BACK:
            text = f"Not in it: {exposure.text}"
        else:
            text += f" (now {exposure.audience}" + (f", {step})." if step else ").")
    return Membership(rollout=rollout, exposure=exposure, is_in=is_in, since=since, text=text)


def customer_lookup(
    *, context: Mapping[str, Any], environment_key: str = "", now: datetime | None = None
) -> LookupResult:
    """Every flag's OFREP answer and the rollouts the customer is in, per environment."""
    from flags import engine, ofrep, snapshot

    now = now or timezone.now()
    envs = environments()
    if environment_key:
        envs = [e for e in envs if e.key == environment_key]
    unleash_context = engine.context_from_ofrep(dict(context))
    names = dict(Flag.objects.values_list("key", "name"))
    rollouts = _lookup_rollouts([e.pk for e in envs], now=now)
    answers: list[EnvironmentAnswer] = []
    for env in envs:
        try:
            compiled = snapshot.load(env.pk)
        except snapshot.EnvironmentNotFound:
            answers.append(EnvironmentAnswer(env, [], [], error="This environment was deleted."))
            continue
        flags = []
        for key in compiled.snapshot.flag_keys:
            raw = ofrep.evaluate_one(compiled, key, unleash_context)
            flags.append(
                FlagAnswer(
                    key=key,
                    name=names.get(key, key),
                    value=raw.get("value"),
                    has_value="value" in raw,
                    variant=raw.get("variant", ""),
                    reason=raw.get("reason", ""),
                    error_code=raw.get("errorCode", ""),
                    error_details=raw.get("errorDetails", ""),
                )
            )
        flags.sort(key=lambda f: f.key)
        by_key = {f.key: f for f in flags}
        memberships = [
            _membership(r, by_key.get(r.flag.key), unleash_context, now=now)
            for r in rollouts.get(env.pk, [])
        ]
        memberships.sort(key=lambda m: (not m.is_in, m.rollout.release.name.lower()))
        answers.append(EnvironmentAnswer(env, flags, memberships))
    return LookupResult(context=dict(context), environments=answers)
