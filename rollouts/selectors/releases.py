"""Releases for pages: the list, one release with its rollouts per environment, and its
pipeline across environments (the promotion each requires).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch
from django.utils import timezone

from flags.models import Environment, Flag
from rollouts.models import ApprovalPolicy, Release, Rollout
from rollouts.selectors.rows import RolloutRow, phases_prefetch, rollout_row

State = Rollout.State


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
            .prefetch_related(phases_prefetch())
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
