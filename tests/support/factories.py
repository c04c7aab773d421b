"""Factories and helpers for the support pages' tests.

Rollouts are driven through `rollouts.services` (the real state machine), so the changelog is
tested against rollouts exactly as the product produces them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import factory

from comms.models import DocLink
from flags.models import Environment, Segment
from flags.services import segment_create
from rollouts import services
from rollouts.models import Release, Rollout, RolloutEvent

UI = RolloutEvent.Source.UI
BETA_USERS = ("beta-ann", "beta-bob")


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"supenv{n}")
    name = factory.LazyAttribute(lambda o: o.key.title())
    order = factory.Sequence(lambda n: n)


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    name = factory.Sequence(lambda n: f"Release {n}")
    version = "1.0"
    summary = "Something new."
    changelog = "* Added **things**."
    label = Release.Label.NEW


class DocLinkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DocLink

    release = factory.SubFactory(ReleaseFactory)
    title = factory.Sequence(lambda n: f"Guide {n}")
    url = factory.Sequence(lambda n: f"https://docs.example.com/guide-{n}")
    kind = DocLink.Kind.USER_GUIDE
    visibility = DocLink.Visibility.PUBLIC


def beta_segment() -> Segment:
    existing = Segment.objects.filter(name="Beta testers").first()
    if existing is not None:
        return existing
    return segment_create(
        name="Beta testers",
        actor=None,
        constraints=[{"contextName": "userId", "operator": "IN", "values": list(BETA_USERS)}],
    )


def phase(
    name: str,
    percentage: int | None,
    *,
    soak: timedelta | None = None,
    segment: int | None = None,
    gate: str = "automatic",
    start_rule: str = "after_soak",
    start_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "percentage": percentage,
        "segment": segment,
        "start_rule": start_rule,
        "start_at": start_at,
        "soak": soak,
        "gate": gate,
        "notes": "",
    }


def canary_plan() -> list[dict[str, Any]]:
    hour = timedelta(hours=1)
    return [
        phase("Canary 1%", 1),
        phase("Canary 25%", 25, soak=hour),
        phase("Canary 50%", 50, soak=hour),
        phase("Everyone", 100, soak=hour),
    ]


def make_rollout(
    *,
    environment: Environment,
    release: Release | None = None,
    strategy: str = Rollout.Strategy.CANARY,
    phases: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> Rollout:
    """A draft rollout through `rollout_create` (it creates the flag)."""
    return services.rollout_create(
        release=release or ReleaseFactory(),
        environment=environment,
        strategy=strategy,
        actor=None,
        source=UI,
        phases=phases if phases is not None else canary_plan(),
        **kwargs,
    )


def hold(rollout: Rollout, *, reason: str, now: datetime) -> Rollout:
    """running -> held, as an alert does: through the service when there is one."""
    hold_service = getattr(services, "rollout_hold", None)
    if hold_service is not None:
        return hold_service(
            rollout=rollout, actor=None, source=RolloutEvent.Source.ALERT, reason=reason, now=now
        )
    rollout.refresh_from_db()
    Rollout.objects.filter(pk=rollout.pk).update(
        state=Rollout.State.HELD, paused_at=now, next_due_at=None
    )
    RolloutEvent.objects.create(
        rollout=rollout,
        kind=RolloutEvent.Kind.HELD,
        source=RolloutEvent.Source.ALERT,
        at=now,
        reason=reason,
        from_phase_index=rollout.current_phase_index,
        to_phase_index=rollout.current_phase_index,
    )
    rollout.refresh_from_db()
    return rollout


def rollout_in_state(
    state: str,
    *,
    environment: Environment,
    now: datetime,
    release: Release | None = None,
    reason: str = "",
    advance_to: int = 1,
) -> Rollout:
    """A canary rollout driven to `state` at `now` (phase `advance_to` when it ran)."""
    S = Rollout.State
    start_at = now + timedelta(days=1)
    plan = canary_plan()
    if state == S.SCHEDULED:
        plan[0] = phase("Canary 1%", 1, start_rule="at", start_at=start_at)
    rollout = make_rollout(environment=environment, release=release, phases=plan)
    if state == S.DRAFT:
        return rollout
    if state == S.SCHEDULED:
        return services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=now)
    if state == S.CANCELLED and advance_to < 0:
        return services.rollout_cancel(
            rollout=rollout, actor=None, source=UI, reason=reason, now=now
        )
    started = now - timedelta(hours=3)
    rollout = services.rollout_start(rollout=rollout, actor=None, source=UI, now=started)
    for index in range(1, advance_to + 1):
        services.rollout_advance_now(
            rollout=rollout,
            actor=None,
            source=UI,
            reason="test",
            now=started + timedelta(hours=index),
        )
        rollout.refresh_from_db()
    if state == S.RUNNING:
        return rollout
    if state == S.PAUSED:
        return services.rollout_pause(
            rollout=rollout, actor=None, source=UI, reason=reason, now=now
        )
    if state == S.HELD:
        return hold(rollout, reason=reason, now=now)
    if state == S.COMPLETED:
        return services.rollout_complete(rollout=rollout, actor=None, source=UI, now=now)
    if state == S.ROLLED_BACK:
        return services.rollout_rollback(
            rollout=rollout, actor=None, source=UI, reason=reason, now=now
        )
    if state == S.CANCELLED:
        return services.rollout_cancel(
            rollout=rollout, actor=None, source=UI, reason=reason, now=now
        )
    raise AssertionError(f"unknown state {state}")


def aware(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
