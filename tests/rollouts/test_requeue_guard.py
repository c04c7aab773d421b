"""The sweep's re-queue guard scales with the tick: a step whose message died with its worker
is queued again by the next sweep (one tick late), not after a fixed minute."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from rollouts import services, tasks
from rollouts.models import RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("tick", "guard"), [(30, 29), (5, 4), (1, 1), (120, 119)])
def test_requeue_guard__just_under_one_tick(settings, tick, guard):
    settings.ROLLCALL_TICK_SECONDS = tick
    assert tasks.requeue_guard_seconds() == guard


def test_sweep__queued_step_lost__queued_again_once_the_guard_expires(
    settings, monkeypatch, time_machine
):
    settings.ROLLCALL_TICK_SECONDS = 30
    cache.clear()
    sent: list[list[tuple[int, int]]] = []
    monkeypatch.setattr(
        tasks.advance_many, "delay_on_commit", lambda steps: sent.append([tuple(s) for s in steps]),
        raising=False,
    )  # fmt: skip
    rollout = make_rollout(environment=EnvironmentFactory(), phases=soak_plan(10, 100))
    services.rollout_start(
        rollout=rollout, actor=None, source=RolloutEvent.Source.UI,
        now=timezone.now() - timedelta(hours=1),
    )  # fmt: skip
    time_machine.move_to(timezone.now(), tick=False)

    assert tasks.sweep() == 1  # queued; its worker dies before running it
    assert tasks.sweep() == 0  # an overlapping sweep: not queued twice
    time_machine.shift(28)
    assert tasks.sweep() == 0
    time_machine.shift(1.5)  # the next tick (30 s after the first): queued again
    assert tasks.sweep() == 1
    assert len(sent) == 2
