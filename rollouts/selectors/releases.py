"""Releases for pages: the list, one release with its rollouts per environment, and its
pipeline across environments (the promotion each requires).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from flags.models import Environment, Flag
from rollouts.models import ApprovalPolicy, Release, Rollout
from rollouts.selectors.rows import RolloutRow, phases_prefetch, rollout_row

State = Rollout.State


@dataclass
class ReleaseRow:
    release: Release
    rollouts: list[RolloutRow]
    more_rollouts: int = 0  # rollouts of the release the list leaves out (see its page)


def release_list(*, now: datetime | None = None) -> list[ReleaseRow]:
    """Releases with their rollouts per environment (3 queries)."""
    now = now or timezone.now()
    releases = Release.objects.select_related("owner").prefetch_related(
        Prefetch(
            "rollouts",
            queryset=Rollout.objects.select_related("environment", "flag")
            .prefetch_related(phases_prefetch())
            .order_by("environment__order", "-created_at"),
        )
    )
    return [
        ReleaseRow(r, [rollout_row(x, list(x.phases.all()), now) for x in r.rollouts.all()])
        for r in releases
    ]


RELEASES_PER_PAGE = 25
# Rollouts shown per release on the list (per environment first, newest first); the release's
# page has them all.
ROLLOUTS_PER_RELEASE = 6


def release_list_page(
    *,
    page: int | str | None = 1,
    per_page: int = RELEASES_PER_PAGE,
    now: datetime | None = None,
) -> tuple[list[ReleaseRow], Page[Release]]:
    """One page of releases, newest first, each with at most ROLLOUTS_PER_RELEASE rollouts
    and how many more it has (a count + 3 queries whatever the data); a page number out of
    range gives the last page."""
    now = now or timezone.now()
    rollout_count = (
        Rollout.objects.filter(release=OuterRef("pk"))
        .order_by()
        .values("release")
        .annotate(n=Count("id"))
        .values("n")
    )
    releases: QuerySet[Release] = (
        Release.objects.select_related("owner")
        .annotate(rollout_count=Coalesce(Subquery(rollout_count), 0))
        .prefetch_related(
            Prefetch(
                "rollouts",
                queryset=Rollout.objects.select_related("environment", "flag")
                .prefetch_related(phases_prefetch())
                .order_by("environment__order", "-created_at", "-id")[:ROLLOUTS_PER_RELEASE],
                to_attr="shown_rollouts",
            )
        )
        .order_by("-created_at", "-id")
    )
    page_obj = Paginator(releases, per_page).get_page(page)
    rows = []
    for r in page_obj.object_list:
        shown = [rollout_row(x, list(x.phases.all()), now) for x in r.shown_rollouts]
        more = r.rollout_count - len(shown)
        rows.append(ReleaseRow(r, shown, more_rollouts=max(more, 0)))
    return rows, page_obj


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
                .prefetch_related(phases_prefetch())
                .order_by("environment__order", "-created_at"),
            ),
        )
        .get(pk=pk)
    )
    return ReleaseRow(
        release, [rollout_row(x, list(x.phases.all()), now) for x in release.rollouts.all()]
    )


@dataclass
class PipelineStep:
    environment: Environment
    rows: list[RolloutRow]
    requires: Environment | None  # must have completed there first
    requirement_met: bool
    policy: ApprovalPolicy | None

    @property
    def completed(self) -> bool:
        return any(r.rollout.state == State.COMPLETED for r in self.rows)


def release_pipeline(row: ReleaseRow) -> list[PipelineStep]:
    """The release's path through environments (ordered), with each environment's rollouts
    and the promotion it requires (2 queries)."""
    policies = {
        p.environment_id: p for p in ApprovalPolicy.objects.select_related("requires_completed_in")
    }
    by_env: dict[int, list[RolloutRow]] = {}
    for r in row.rollouts:
        by_env.setdefault(r.rollout.environment_id, []).append(r)
    environments = list(Environment.objects.order_by("order", "key"))
    completed = {
        env_id
        for env_id, rows in by_env.items()
        if any(r.rollout.state == State.COMPLETED for r in rows)
    }
    steps = []
    for env in environments:
        policy = policies.get(env.id)
        requires = policy.requires_completed_in if policy else None
        if env.id not in by_env and requires is None:
            continue
        steps.append(
            PipelineStep(
                environment=env,
                rows=by_env.get(env.id, []),
                requires=requires,
                requirement_met=requires is None or requires.id in completed,
                policy=policy,
            )
        )
    return steps
