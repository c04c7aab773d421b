"""Shared by the rollout safety service tests (gates, holds, windows, alerts, rollback):
a fixed clock, and a rollout started at it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import make_rollout, soak_plan

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def started(env, *percentages: int, actor=None, soak=10 * MIN, now=T0, **kw) -> Rollout:
    rollout = make_rollout(
        environment=env, phases=soak_plan(*percentages, soak=soak), actor=actor, **kw
    )
    return services.rollout_start(rollout=rollout, actor=actor, source=UI, now=now)
