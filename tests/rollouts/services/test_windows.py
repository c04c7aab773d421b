"""rollouts.services.windows: freeze and allowed-hours windows move the clock and refuse
people's moves unless overridden. Time is always passed in as `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import Hold, Rollout, RolloutEvent
from tests.rollouts.factories import (
    ReleaseFactory,
    freeze,
    gate_policy,
    make_rollout,
)
from tests.rollouts.services.helpers import MIN, T0, reload, started

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


def due_ids(now: datetime) -> set[int]:
    return {rid for rid, _ in services.rollouts_due(now=now)}


def tick(rollout: Rollout, now: datetime) -> bool:
    """The scheduler's step for this rollout, as the sweep would take it."""
    current = reload(rollout).current_phase_index
    return services.rollout_advance(
        rollout_id=rollout.pk,
        expected_phase_index=current,
        actor=None,
        source=RolloutEvent.Source.SCHEDULER,
        now=now,
    )


# --------------------------------------------------------------------------------------------
# Freeze and allow windows


def test_window__due_inside_one_off_freeze__waits_and_advances_at_its_end(staging):
    rollout = started(staging, 10, 50)  # phase 2 due at T0 + 10 min
    end = T0 + 2 * 60 * MIN
    freeze("Release freeze", environment=staging, starts_at=T0 + 5 * MIN, ends_at=end)
    rollout = reload(rollout)
    assert rollout.next_due_at == end
    assert rollout.pk not in due_ids(T0 + 30 * MIN)
    assert tick(rollout, T0 + 30 * MIN) is False
    assert rollout.pk in due_ids(end)
    assert tick(rollout, end) is True
    advanced = rollout.events.filter(kind=Kind.ADVANCED).last()
    assert advanced.due_at == end and advanced.to_percentage == 50


def test_window__nightly_freeze_across_spring_dst__ends_at_local_8_am(staging):
    # Europe/Berlin moves to summer time on Sunday 2030-03-31: the night has 9 hours.
    freeze("Nights", environment=staging, tz="Europe/Berlin", cron="0 22 * * *",
           duration=timedelta(hours=10))  # fmt: skip
    saturday_evening = datetime(2030, 3, 30, 20, 30, tzinfo=UTC)  # 21:30 CET, before the freeze
    rollout = started(staging, 10, 50, soak=60 * MIN, now=saturday_evening)  # due 22:30 CET
    sunday_8_cest = datetime(2030, 3, 31, 6, 0, tzinfo=UTC)
    assert reload(rollout).next_due_at == sunday_8_cest
    assert tick(rollout, sunday_8_cest - MIN) is False
    assert tick(rollout, sunday_8_cest) is True


def test_window__nightly_freeze_across_autumn_dst__ends_at_local_8_am(staging):
    # Back to winter time on Sunday 2030-10-27: the night has 11 hours.
    freeze("Nights", environment=staging, tz="Europe/Berlin", cron="0 22 * * *",
           duration=timedelta(hours=10))  # fmt: skip
    rollout = started(staging, 10, 50, soak=60 * MIN, now=datetime(2030, 10, 26, 19, tzinfo=UTC))
    assert reload(rollout).next_due_at == datetime(2030, 10, 27, 7, 0, tzinfo=UTC)


def test_window__allow_business_hours__due_on_saturday_waits_for_monday_9(staging):
    freeze("Business hours", kind="allow", environment=staging, tz="Europe/Berlin",
           cron="0 9 * * 1-5", duration=timedelta(hours=7))  # fmt: skip
    friday_15_cet = datetime(2030, 3, 8, 14, 0, tzinfo=UTC)
    rollout = started(staging, 10, 50, soak=24 * 60 * MIN, now=friday_15_cet)
    assert reload(rollout).next_due_at == datetime(2030, 3, 11, 8, 0, tzinfo=UTC)


def test_window__deny_beats_allow__monday_morning_freeze_pushes_to_noon(staging):
    freeze("Business hours", kind="allow", environment=staging, tz="Europe/Berlin",
           cron="0 9 * * 1-5", duration=timedelta(hours=7))  # fmt: skip
    freeze("Monday standup", environment=None, tz="Europe/Berlin", cron="0 9 * * 1",
           duration=timedelta(hours=3))  # fmt: skip
    rollout = started(staging, 10, 50, soak=24 * 60 * MIN, now=datetime(2030, 3, 8, 14, tzinfo=UTC))
    assert reload(rollout).next_due_at == datetime(2030, 3, 11, 11, 0, tzinfo=UTC)


def test_window__other_environment__does_not_apply(staging, prod):
    freeze("Prod freeze", environment=prod, starts_at=T0, ends_at=T0 + 600 * MIN)
    rollout = started(staging, 10, 50)
    assert reload(rollout).next_due_at == T0 + 10 * MIN


def test_window__deleted__due_time_returns(staging):
    rollout = started(staging, 10, 50)
    window = freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    assert reload(rollout).next_due_at == T0 + 600 * MIN
    services.window_delete(window=window, actor=None)
    assert reload(rollout).next_due_at == T0 + 10 * MIN


def test_window__stale_due_column__scheduler_still_never_advances_inside(staging):
    rollout = started(staging, 10, 50)
    freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    Rollout.objects.filter(pk=rollout.pk).update(next_due_at=T0 + 10 * MIN)  # out of date
    assert tick(rollout, T0 + 20 * MIN) is False
    assert reload(rollout).current_phase_index == 0
    assert reload(rollout).next_due_at == T0 + 600 * MIN


def test_window__advance_now_inside_freeze__refused_without_override(staging, release_manager):
    rollout = started(staging, 10, 50)
    freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_advance_now(
            rollout=rollout, actor=release_manager, source=UI, reason="hotfix", now=T0 + MIN
        )
    assert exc.value.code == "window_closed"
    assert "Freeze" in exc.value.message


def test_window__override_with_permission_and_reason__advances_and_is_recorded(
    staging, release_manager
):
    rollout = started(staging, 10, 50)
    freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    with pytest.raises(ApplicationError, match="Say why"):
        services.rollout_advance_now(
            rollout=rollout, actor=release_manager, source=UI, reason="", now=T0 + 20 * MIN,
            override_window=True,
        )  # fmt: skip
    services.rollout_advance_now(
        rollout=rollout, actor=release_manager, source=UI, reason="customer escalation",
        now=T0 + 20 * MIN, override_window=True,
    )  # fmt: skip
    assert reload(rollout).current_phase_index == 1
    override = rollout.events.get(kind=Kind.OVERRIDE)
    assert override.reason == "customer escalation"
    assert override.actor == release_manager
    assert override.data["window"] == "Freeze"


def test_window__override_without_the_permission__refused(staging, make_user):
    nobody = make_user("nobody")
    rollout = started(staging, 10, 50)
    freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_advance_now(
            rollout=rollout, actor=nobody, source=UI, reason="x", now=T0 + 20 * MIN,
            override_window=True,
        )  # fmt: skip
    assert exc.value.code == "forbidden"
    assert not rollout.events.filter(kind=Kind.OVERRIDE).exists()


def test_window__override_cannot_bypass_an_approval(prod, release_manager):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, actor=release_manager)
    freeze("Freeze", environment=prod, starts_at=T0, ends_at=T0 + 600 * MIN)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_advance_now(
            rollout=rollout, actor=release_manager, source=UI, reason="x", now=T0 + 20 * MIN,
            override_window=True,
        )  # fmt: skip
    assert exc.value.code == "gated"


def test_window__start_inside_freeze__refused_then_overridden(staging, release_manager):
    freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    rollout = make_rollout(environment=staging)
    with pytest.raises(ApplicationError):
        services.rollout_start(rollout=rollout, actor=release_manager, source=UI, now=T0)
    services.rollout_start(
        rollout=rollout, actor=release_manager, source=UI, now=T0, override_window=True,
        reason="incident fix",
    )  # fmt: skip
    assert reload(rollout).state == State.RUNNING


def test_window__invalid_input__refused_with_the_field():
    with pytest.raises(ApplicationError) as exc:
        freeze("Bad", cron="every day", duration=timedelta(hours=1))
    assert exc.value.field == "cron"
    with pytest.raises(ApplicationError) as exc:
        freeze("Bad", starts_at=T0, ends_at=T0 - MIN)
    assert exc.value.field == "ends_at"
    with pytest.raises(ApplicationError) as exc:
        freeze("Bad", cron="0 9 * * *")
    assert exc.value.field == "duration"


def test_window_hold_rollouts__emergency_freeze__holds_live_rollouts_in_scope(staging, prod):
    here = started(staging, 10, 50)
    there = started(prod, 10, 50, release=ReleaseFactory())
    window = freeze("Incident", environment=staging, starts_at=T0, ends_at=T0 + 60 * MIN)
    assert services.window_hold_rollouts(window=window, actor=None, source=UI, now=T0) == 1
    assert reload(here).state == State.HELD
    assert reload(here).holds.get().kind == Hold.Kind.FREEZE
    assert reload(there).state == State.RUNNING


def test_window_update__moved_end__due_time_follows(staging):
    rollout = started(staging, 10, 50)
    window = freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 600 * MIN)
    services.window_update(window=window, actor=None, ends_at=T0 + 60 * MIN)
    assert reload(rollout).next_due_at == T0 + 60 * MIN
    services.window_update(window=window, actor=None, is_active=False)
    assert reload(rollout).next_due_at == T0 + 10 * MIN


def test_window_update__to_recurring__one_off_dates_dropped(staging):
    window = freeze("Freeze", environment=staging, starts_at=T0, ends_at=T0 + 60 * MIN)
    window = services.window_update(
        window=window, actor=None, cron="0 22 * * *", duration=timedelta(hours=8)
    )
    assert (window.starts_at, window.ends_at, window.cron) == (None, None, "0 22 * * *")
