"""factory_boy factories and helpers for rollouts (shared: add, do not change existing ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import factory

from flags.models import Environment, Flag, Segment
from flags.services import segment_create
from rollouts import services
from rollouts.models import Phase, Release, Rollout, RolloutEvent

BETA_USERS = ("beta-1", "beta-2", "beta-3")
TEMPLATE = object()  # make_rollout(phases=TEMPLATE): let the service pick the plan


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"rollenv{n}")
    name = factory.LazyAttribute(lambda o: o.key.title())
    order = factory.Sequence(lambda n: n)


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    name = factory.Sequence(lambda n: f"Release {n}")
    version = "1.0"
    summary = "Something new."
    label = Release.Label.NEW


def beta_segment() -> Segment:
    """The "Beta testers" segment (explicit user ids), created through the flags services."""
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
    start_rule: str = "after_soak",
    start_at: datetime | None = None,
    gate: str = "automatic",
    notes: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """A plan phase dict as `rollout_create` / `rollout_plan_update` take it (`extra`: e.g.
    requires_approval=True, checklist=["Staging sign-off"])."""
    return {
        **extra,
        "name": name,
        "percentage": percentage,
        "segment": segment,
        "start_rule": start_rule,
        "start_at": start_at,
        "soak": soak,
        "gate": gate,
        "notes": notes,
    }


def soak_plan(*percentages: int, soak: timedelta = timedelta(minutes=10)) -> list[dict[str, Any]]:
    """Phases at these percentages, each `soak` after the one before."""
    return [phase(f"{pct}%", pct, soak=soak if i else None) for i, pct in enumerate(percentages)]


def make_rollout(
    *,
    environment: Environment | None = None,
    strategy: str = Rollout.Strategy.FEATURE_FLAG,
    phases: Any = None,
    release: Release | None = None,
    actor: Any = None,
    **kwargs: Any,
) -> Rollout:
    """A draft rollout through `rollout_create` (creates the flag unless one is given).

    Without `phases` the plan is 10 -> 50 -> 100 with 10-minute soaks; `phases=TEMPLATE` or a
    `template=` lets the service fill the plan.
    """
    environment = environment or EnvironmentFactory()
    release = release or ReleaseFactory()
    if phases is TEMPLATE or "template" in kwargs:
        phases = None
    elif phases is None:
        phases = soak_plan(10, 50, 100)
    return services.rollout_create(
        release=release,
        environment=environment,
        strategy=strategy,
        actor=actor,
        source=RolloutEvent.Source.UI,
        phases=phases,
        **kwargs,
    )


def snapshot_for(environment: Environment):
    """The environment's compiled flags (the engine OFREP serves from), freshly built."""
    from flags import snapshot
    from tests.conftest import clear_own_cache

    snapshot.invalidate_local()
    clear_own_cache()
    return snapshot.get_snapshot(environment.id)


def share_on(
    environment: Environment, flag: Flag | str, *, field: str = "userId", n: int = 1000
) -> float:
    """The share of n distinct callers for whom the flag is on (0.0 .. 1.0)."""
    key = flag if isinstance(flag, str) else flag.key
    snap = snapshot_for(environment)
    on = 0
    for i in range(n):
        value = f"caller-{i}"
        ctx: dict[str, Any] = (
            {field: value} if field in ("userId", "sessionId") else {"properties": {field: value}}
        )
        on += snap.evaluate(key, ctx).enabled
    return on / n


def on_for(environment: Environment, flag: Flag | str, *, field: str = "userId") -> set[str]:
    """Which of 1000 callers get the flag (for "nobody flips back" checks)."""
    key = flag if isinstance(flag, str) else flag.key
    snap = snapshot_for(environment)
    result = set()
    for i in range(1000):
        value = f"caller-{i}"
        ctx: dict[str, Any] = (
            {field: value} if field in ("userId", "sessionId") else {"properties": {field: value}}
        )
        if snap.evaluate(key, ctx).enabled:
            result.add(value)
    return result


# --------------------------------------------------------------------------------------------
# Rows without the services (UI tests: many rollouts fast, any state). Added by the UI.


class RolloutFactory(factory.django.DjangoModelFactory):
    """A rollout row in any state, with no phases (add PhaseFactory rows or use with_phases)."""

    class Meta:
        model = Rollout

    key = factory.Sequence(lambda n: f"rollout-{n}")
    release = factory.SubFactory(ReleaseFactory)
    environment = factory.SubFactory(EnvironmentFactory)
    strategy = Rollout.Strategy.FEATURE_FLAG
    flag = factory.SubFactory("tests.flags.factories.FlagFactory")
    timezone = "UTC"


class PhaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Phase

    rollout = factory.SubFactory(RolloutFactory)
    order = factory.Sequence(lambda n: n)
    name = factory.LazyAttribute(lambda o: f"Phase {o.order + 1}")
    percentage = 10
    start_rule = Phase.StartRule.AFTER_SOAK
    soak = timedelta(hours=1)


class RolloutEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RolloutEvent

    rollout = factory.SubFactory(RolloutFactory)
    kind = RolloutEvent.Kind.ADVANCED
    source = RolloutEvent.Source.SCHEDULER
    at = factory.LazyFunction(lambda: datetime(2030, 1, 1, tzinfo=UTC))


def rollout_with_phases(
    *percentages: int | None,
    state: str = Rollout.State.DRAFT,
    current: int = -1,
    applied_from: datetime | None = None,
    step: timedelta = timedelta(hours=1),
    **kwargs: Any,
) -> Rollout:
    """A rollout row with phases at these percentages; phases up to `current` are applied,
    one `step` apart from `applied_from` (no flag rules are touched)."""
    rollout = RolloutFactory(state=state, current_phase_index=current, **kwargs)
    start = applied_from or datetime(2030, 1, 1, 9, tzinfo=UTC)
    for i, pct in enumerate(percentages):
        PhaseFactory(
            rollout=rollout,
            order=i,
            name=f"{pct}%" if pct is not None else f"Phase {i + 1}",
            percentage=pct,
            soak=step if i else None,
            applied_at=start + i * step if i <= current else None,
        )
    if current >= 0:
        rollout.started_at = start
        rollout.phase_started_at = start + current * step
        rollout.save(update_fields=["started_at", "phase_started_at"])
    return rollout


# --------------------------------------------------------------------------------------------
# Safety: policies, windows and alerts. Added with rollout safety.


def gate_policy(environment: Environment, **kwargs: Any):
    """An environment's approval/promotion policy, through the service."""
    return services.approval_policy_set(environment=environment, actor=None, **kwargs)


def freeze(
    name: str = "Freeze",
    *,
    environment: Environment | None = None,
    kind: str = "deny",
    tz: str = "UTC",
    **kwargs: Any,
):
    """A freeze (or allow) window, through the service."""
    return services.window_create(
        name=name, kind=kind, environment=environment, timezone_name=tz, actor=None, **kwargs
    )


def alert_payload(
    *alerts: dict[str, Any], status: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) around these alerts."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
        "status": status or (alerts[0]["status"] if alerts else "firing"),
        "receiver": "rollcall",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **extra,
    }


def alert(
    *,
    status: str = "firing",
    fingerprint: str = "f00dfeed",
    starts_at: str = "2030-03-04T09:05:00Z",
    **labels: str,
) -> dict[str, Any]:
    labels = {"alertname": "HighErrorRate", "severity": "page", **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "5xx above 2%"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2030-03-04T09:30:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }
