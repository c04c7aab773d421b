"""The support dashboard panel: releases changed lately, rollouts live now, rollouts held
or rolled back, and broken doc links; a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from comms.models import DocLink
from rollouts.models import Phase, Release, Rollout, RolloutEvent
from support.selectors._common import _state_event_subqueries
from support.selectors.exposure import Exposure, rollout_exposure


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
