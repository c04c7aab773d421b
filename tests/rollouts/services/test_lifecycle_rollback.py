"""rollouts.services.rollback: rollback modes (restore the rules from before, or freeze at
the current exposure)."""

from __future__ import annotations

import pytest

from core.exceptions import ApplicationError
from flags.models import FlagState
from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import make_rollout, soak_plan
from tests.rollouts.services.helpers import MIN, T0, reload, started

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


# --------------------------------------------------------------------------------------------
# Rollback choices


def test_rollback__freeze__exposure_stays_and_it_is_recorded(staging, release_manager):
    rollout = started(staging, 10, 50, 100)
    services.rollout_advance_now(
        rollout=rollout, actor=release_manager, source=UI, reason="go", now=T0 + MIN
    )
    before = FlagState.objects.get(flag=rollout.flag, environment=staging).rules
    services.rollout_rollback(
        rollout=rollout, actor=release_manager, source=UI, reason="stop here", mode="freeze"
    )
    rollout = reload(rollout)
    assert rollout.state == State.ROLLED_BACK
    assert rollout.rollback_mode == "freeze"
    assert FlagState.objects.get(flag=rollout.flag, environment=staging).rules == before
    event = rollout.events.get(kind=Kind.ROLLED_BACK)
    assert (event.from_percentage, event.to_percentage) == (50, 50)
    assert event.data["mode"] == "freeze"
    assert services.rollout_exposure(rollout) == 50


def test_rollback__restore__recorded_with_its_mode(staging, release_manager):
    rollout = started(staging, 10, 50)
    services.rollout_rollback(rollout=rollout, actor=release_manager, source=UI)
    event = reload(rollout).events.get(kind=Kind.ROLLED_BACK)
    assert event.data["mode"] == "restore" and event.to_percentage == 0


@pytest.mark.parametrize("strategy", ["canary", "blue_green"])
def test_rollback__freeze_for_instant_strategies__refused(staging, release_manager, strategy):
    plan = soak_plan(0, 100) if strategy == "blue_green" else soak_plan(5, 100)
    rollout = make_rollout(environment=staging, strategy=strategy, phases=plan)
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_rollback(rollout=rollout, actor=release_manager, source=UI, mode="freeze")
    assert exc.value.field == "mode"
    assert reload(rollout).state == State.RUNNING


def test_rollback__freeze_a_completed_rollout__refused(staging, release_manager):
    rollout = started(staging, 10, 100)
    services.rollout_complete(rollout=rollout, actor=release_manager, source=UI)
    with pytest.raises(ApplicationError, match="full exposure"):
        services.rollout_rollback(rollout=rollout, actor=release_manager, source=UI, mode="freeze")
