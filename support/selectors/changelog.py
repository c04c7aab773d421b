"""The support changelog: releases with live exposure of their rollouts, flags, doc links,
runbooks and notices; filters and pagination; one release in detail; the personal Atom feed.

Every list runs a fixed number of queries whatever the number of releases, rollouts, phases
or links (prefetches and subqueries, never a query per row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString

from comms.models import DocLink
from flags.models import Flag
from rollouts.models import Phase, Release, Rollout, RolloutEvent
from support.selectors._common import (
    FEED_SIZE,
    PAGE_SIZE,
    _markdown,
    _state_event_subqueries,
)
from support.selectors.exposure import Exposure, TimelineRow, rollout_exposure, rollout_timeline

EVENTS_PER_ROLLOUT = 10
RUNBOOK_KINDS = {DocLink.Kind.RUNBOOK}


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


def _release_prefetches(
    *, environment: str = "", with_events: bool = False
) -> list[Prefetch[Any, Any, Any]]:
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
    page: Page[Release]
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
        if release_id is None:  # not reachable: the filter matched its release or rollout
            continue
        bucket = by_release.setdefault(release_id, [])
        if len(bucket) < NOTICES_PER_RELEASE:
            bucket.append(notice)
    for view in views:
        view.notices = by_release.get(view.release.pk, [])


def feed_releases(
    *, environment: str = "", label: str = "", limit: int = FEED_SIZE
) -> list[ReleaseView]:
    """The support feed: like the changelog's first page, without pagination."""
    now = timezone.now()
    filters = ChangelogFilters(environment=environment, label=label)
    qs = changelog_queryset(filters).prefetch_related(*_release_prefetches(environment=environment))
    return [_release_view(r, now=now) for r in qs[:limit]]
