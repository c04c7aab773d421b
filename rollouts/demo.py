"""Rollouts demo data: three releases and rollouts in each interesting state. Idempotent.

Runs after `flags.demo` (environments development/staging/production, segment "Beta
testers", flag `new-checkout`). Everything goes through the services, with `now` moved into
the past where a rollout needs a history:
- a canary of "Checkout v2" running in staging, mid-way, its next phases minutes apart so a
  demo user sees the scheduler advance it, then a week at 25% (a finished demo canary is
  replaced by a fresh one on the next load, so there is always one in progress);
- a feature-flag rollout of the one-page checkout scheduled in production for tomorrow 09:00
  (Europe/Amsterdam) on the "Beta testers -> 5 -> 25 -> 50 -> 100" template;
- a rolling deploy of a search fix, completed last week.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.utils import timezone

from flags.models import Environment, Flag
from rollouts import services, strategies
from rollouts.models import Release, Rollout, RolloutEvent

UI = RolloutEvent.Source.UI
SCHEDULER = RolloutEvent.Source.SCHEDULER
MIN = timedelta(minutes=1)


def _release(actor: Any, *, name: str, version: str, **fields: Any) -> Release:
    release = Release.objects.filter(name=name, version=version).first()
    if release is None:
        release = services.release_create(name=name, version=version, actor=actor, **fields)
    return release


def _phase(name: str, pct: int | None, soak: timedelta | None = None, **kw: Any) -> dict:
    return {"name": name, "percentage": pct, "soak": soak, **kw}


# The canary's last phase soaks a week, so a visitor days later still sees it mid-flight.
CANARY_LAST_SOAK = timedelta(days=7)


def _running_canary(actor: Any, staging: Environment, now: datetime, stdout: Any) -> None:
    key = "checkout-v2-staging-canary"
    existing = list(Rollout.objects.filter(key__startswith=key).order_by("-created_at"))
    if existing and not existing[0].is_final:
        return
    flag = existing[0].flag if existing else None
    if existing:
        # The last demo canary finished (or was stopped): start a fresh one, so the demo
        # always has a rollout in progress.
        key = f"{key}-{len(existing) + 1}"
    release = _release(
        actor,
        name="Checkout v2",
        version="2.0",
        label=Release.Label.IMPROVEMENT,
        summary="A faster checkout service with saved cards and Apple Pay.",
        changelog=(
            "## What's new\n\n- Saved cards\n- Apple Pay\n- Checkout answers in half the time\n"
        ),
        known_issues="Apple Pay is not offered in Safari 15 yet.",
        is_public=True,
    )
    rollout = services.rollout_create(
        release=release,
        environment=staging,
        strategy="canary",
        key=key,
        actor=actor,
        source=UI,
        flag=flag,
        timezone="Europe/Amsterdam",
        phases=[
            _phase("Canary 1%", 1),
            _phase("Canary 5%", 5, 3 * MIN),
            _phase("Canary 25%", 25, 3 * MIN),
            _phase("Everyone", 100, CANARY_LAST_SOAK),
        ],
        now=now - 10 * MIN,
    )
    services.rollout_start(rollout=rollout, actor=actor, source=UI, now=now - 5 * MIN)
    services.rollout_advance(
        rollout_id=rollout.id,
        expected_phase_index=0,
        actor=None,
        source=SCHEDULER,
        now=now - 2 * MIN + timedelta(seconds=4),
    )
    stdout.write(f"Created running canary {key} (next phase in about a minute).")


def _scheduled_feature_flag(
    actor: Any, production: Environment, now: datetime, stdout: Any
) -> None:
    key = "one-page-checkout-production"
    if Rollout.objects.filter(key=key).exists():
        return
    flag = Flag.objects.filter(key="new-checkout").first()
    release = _release(
        actor,
        name="One-page checkout",
        version="1.0",
        label=Release.Label.NEW,
        summary="Pay on one page instead of three.",
        changelog="## New\n\nThe whole checkout fits on one page.\n",
        flags=[flag] if flag else [],
    )
    tz = ZoneInfo("Europe/Amsterdam")
    tomorrow = timezone.localtime(now, tz).date() + timedelta(days=1)
    phases = strategies.template_phases("beta-5-25-50-100")
    phases[0].update(start_rule="at", start_at=datetime.combine(tomorrow, time(9, 0), tzinfo=tz))
    phases[0]["notes"] = "Support hears the day before; beta testers get it first."
    rollout = services.rollout_create(
        release=release,
        environment=production,
        strategy="feature_flag",
        key=key,
        flag=flag,
        flag_key=None if flag else "new-checkout",
        actor=actor,
        source=UI,
        timezone=tz.key,
        phases=phases,
        template="beta-5-25-50-100",
        now=now - 60 * MIN,
    )
    services.rollout_schedule(rollout=rollout, actor=actor, source=UI, now=now - 59 * MIN)
    stdout.write(f"Created scheduled rollout {key} (starts tomorrow 09:00 Amsterdam time).")


def _completed_rolling(actor: Any, production: Environment, now: datetime, stdout: Any) -> None:
    key = "search-fix-production-rolling"
    if Rollout.objects.filter(key=key).exists():
        return
    release = _release(
        actor,
        name="Search ranking fix",
        version="1.4.1",
        label=Release.Label.FIX,
        summary="Exact product names rank first again.",
        changelog="## Fixed\n\nSearching for an exact product name shows that product first.\n",
        is_public=True,
    )
    start = now - timedelta(days=6, hours=3)
    rollout = services.rollout_create(
        release=release,
        environment=production,
        strategy="rolling",
        key=key,
        actor=actor,
        source=UI,
        template="rolling-4-batches",
        now=start - 30 * MIN,
    )
    services.rollout_start(rollout=rollout, actor=actor, source=UI, now=start)
    applied = start
    for index in range(3):
        # The scheduler picked each batch up a few seconds after its soak ended.
        applied = applied + 15 * MIN + timedelta(seconds=3 + 5 * index)
        services.rollout_advance(
            rollout_id=rollout.id,
            expected_phase_index=index,
            actor=None,
            source=SCHEDULER,
            now=applied,
        )
    stdout.write(f"Created completed rollout {key}.")


def load(*, stdout: Any) -> None:
    envs = {e.key: e for e in Environment.objects.filter(key__in=["staging", "production"])}
    if len(envs) < 2:
        stdout.write("Skipped rollouts demo: load the flags demo first (staging, production).")
        return
    actor = get_user_model().objects.filter(username="release").first()
    now = timezone.now()
    _running_canary(actor, envs["staging"], now, stdout)
    _scheduled_feature_flag(actor, envs["production"], now, stdout)
    _completed_rolling(actor, envs["production"], now, stdout)
