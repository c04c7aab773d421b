"""Rollout safety: approvals, checklists, promotion, freeze windows, holds, alerts and rollback
choices. Time is always passed in as `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ApplicationError
from flags.models import FlagState
from rollouts import services
from rollouts.models import Approval, ChecklistItem, Hold, Rollout, RolloutEvent
from tests.rollouts.factories import (
    EnvironmentFactory,
    ReleaseFactory,
    alert,
    alert_payload,
    freeze,
    gate_policy,
    make_rollout,
    phase,
    share_on,
    soak_plan,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


@pytest.fixture
def prod():
    return EnvironmentFactory(key="production", name="Production", is_production=True)


@pytest.fixture
def staging():
    return EnvironmentFactory(key="staging", name="Staging")


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def kinds(rollout: Rollout) -> list[str]:
    return list(rollout.events.order_by("at", "id").values_list("kind", flat=True))


def started(env, *percentages: int, actor=None, soak=10 * MIN, now=T0, **kw) -> Rollout:
    rollout = make_rollout(
        environment=env, phases=soak_plan(*percentages, soak=soak), actor=actor, **kw
    )
    return services.rollout_start(rollout=rollout, actor=actor, source=UI, now=now)


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


def pending(rollout: Rollout) -> Approval:
    return Approval.objects.get(rollout=rollout, state=Approval.State.PENDING)


# --------------------------------------------------------------------------------------------
# Approvals


def test_approval__policy_phase_reaches_50__requested_and_blocks_clock_and_people(
    prod, release_manager, approver
):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, 100, actor=release_manager)

    request = pending(rollout)
    assert request.phase.order == 1
    assert request.requested_by == release_manager
    assert Kind.APPROVAL_REQUESTED in kinds(rollout)
    later = T0 + 11 * MIN
    assert rollout.pk not in due_ids(later)
    assert tick(rollout, later) is False
    with pytest.raises(ApplicationError) as exc:
        services.rollout_advance_now(
            rollout=rollout, actor=release_manager, source=UI, reason="go", now=later
        )
    assert exc.value.code == "gated"
    assert "waits for approval: 0 of 1" in exc.value.message
    assert reload(rollout).current_phase_index == 0

    result = services.approval_decide(
        approval=request, actor=approver, decision="approve", comment="ok", source=UI, now=later
    )
    assert result.complete
    assert rollout.pk in due_ids(later)
    assert tick(rollout, later) is True
    assert reload(rollout).current_phase_index == 1
    # The 100% phase needs its own approval: asked for as soon as 50% applied.
    assert pending(rollout).phase.order == 2


def test_approval__requester_approves_own_request__refused_four_eyes(prod, release_manager):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, actor=release_manager)
    with pytest.raises(ApplicationError) as exc:
        services.approval_decide(
            approval=pending(rollout), actor=release_manager, decision="approve", source=UI
        )
    assert exc.value.code == "self_approval"
    assert pending(rollout).decisions.count() == 0


def test_approval__policy_allows_self_approval__requester_may_approve(prod, release_manager):
    gate_policy(prod, min_percentage=50, allow_self_approval=True)
    rollout = started(prod, 10, 50, actor=release_manager)
    request = pending(rollout)
    result = services.approval_decide(
        approval=request, actor=release_manager, decision="approve", source=UI, now=T0
    )
    assert result.complete
    request.refresh_from_db()
    assert request.state == Approval.State.APPROVED


def test_approval__two_approvers_required__granted_only_after_the_second(
    prod, release_manager, approver, make_user
):
    gate_policy(prod, min_percentage=50, approvals_required=2)
    rollout = started(prod, 10, 50, actor=release_manager)
    request = pending(rollout)
    later = T0 + 20 * MIN

    first = services.approval_decide(
        approval=request, actor=approver, decision="approve", source=UI, now=later
    )
    assert not first.complete
    assert tick(rollout, later) is False
    with pytest.raises(ApplicationError, match="already decided"):
        services.approval_decide(approval=request, actor=approver, decision="approve", source=UI)

    second_person = make_user("blake", "Release managers")
    second = services.approval_decide(
        approval=request, actor=second_person, decision="approve", source=UI, now=later
    )
    assert second.complete
    assert tick(rollout, later) is True
    approved = rollout.events.filter(kind=Kind.APPROVED).order_by("id")
    assert [e.data["approvals"] for e in approved] == [1, 2]
    assert [e.data["complete"] for e in approved] == [False, True]


def test_approval__support_user__cannot_approve(prod, release_manager, support_user):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, actor=release_manager)
    with pytest.raises(ApplicationError) as exc:
        services.approval_decide(
            approval=pending(rollout), actor=support_user, decision="approve", source=UI
        )
    assert exc.value.code == "forbidden"


def test_approval__declined__rollout_held_with_the_reason_and_asked_again_on_resume(
    prod, release_manager, approver
):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, actor=release_manager)
    request = pending(rollout)
    with pytest.raises(ApplicationError, match="Say why"):
        services.approval_decide(approval=request, actor=approver, decision="decline", source=UI)

    later = T0 + 5 * MIN
    services.approval_decide(
        approval=request, actor=approver, decision="decline", comment="error budget spent",
        source=UI, now=later,
    )  # fmt: skip
    rollout = reload(rollout)
    assert rollout.state == State.HELD
    hold = rollout.holds.get()
    assert hold.kind == Hold.Kind.DECLINED and hold.is_active
    assert "error budget spent" in hold.reason
    assert kinds(rollout)[-2:] == [Kind.DECLINED, Kind.HELD]
    assert rollout.next_due_at is None

    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=later + MIN)
    hold.refresh_from_db()
    assert not hold.is_active
    assert reload(rollout).state == State.RUNNING
    again = pending(rollout)
    assert again.pk != request.pk and again.phase_id == request.phase_id


def test_approval__plan_marks_phase__one_approval_needed_without_policy(
    staging, release_manager, approver
):
    plan = [phase("10%", 10), phase("Half", 50, soak=10 * MIN, requires_approval=True)]
    rollout = make_rollout(environment=staging, phases=plan, actor=release_manager)
    services.rollout_start(rollout=rollout, actor=release_manager, source=UI, now=T0)
    request = pending(rollout)
    assert request.required == 1
    assert "plan asks" in request.why


def test_approval__phase_exposure_changed_after_approval__asked_again(
    prod, release_manager, approver
):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, actor=release_manager)
    first = pending(rollout)
    services.approval_decide(approval=first, actor=approver, decision="approve", source=UI)
    services.rollout_plan_update(
        rollout=rollout,
        phases=soak_plan(10, 60),
        actor=release_manager,
        source=UI,
        now=T0 + MIN,
    )
    first.refresh_from_db()
    assert first.state == Approval.State.CANCELLED
    assert pending(rollout).pk != first.pk


def test_approval__complete_with_gated_phase_ahead__refused(prod, release_manager):
    gate_policy(prod, min_percentage=50)
    rollout = started(prod, 10, 50, 100, actor=release_manager)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_complete(rollout=rollout, actor=release_manager, source=UI)
    assert exc.value.code == "gated"
    assert reload(rollout).state == State.RUNNING


def test_approval_policy__set_and_removed__live_rollout_follows(prod, release_manager):
    rollout = started(prod, 10, 50, actor=release_manager)
    assert not Approval.objects.exists()
    gate_policy(prod, min_percentage=50)
    request = pending(rollout)
    services.approval_policy_delete(environment=prod, actor=None)
    request.refresh_from_db()
    assert request.state == Approval.State.CANCELLED
    assert rollout.pk in due_ids(T0 + 10 * MIN)


def test_approval_request__draft_whose_first_phase_is_gated__asked_then_start_allowed(
    prod, release_manager, approver
):
    gate_policy(prod, min_percentage=0)
    rollout = make_rollout(environment=prod, phases=soak_plan(10, 50), actor=release_manager)
    with pytest.raises(ApplicationError, match="request it first"):
        services.rollout_start(rollout=rollout, actor=release_manager, source=UI, now=T0)
    request = services.approval_request(rollout=rollout, actor=release_manager, source=UI, now=T0)
    services.approval_decide(approval=request, actor=approver, decision="approve", source=UI)
    services.rollout_start(rollout=rollout, actor=release_manager, source=UI, now=T0)
    assert reload(rollout).state == State.RUNNING


# --------------------------------------------------------------------------------------------
# Checklists


def _checklist_rollout(env, actor) -> Rollout:
    plan = [
        phase("Beta", 10),
        phase("GA", 100, soak=10 * MIN, checklist=["Staging sign-off", "Support briefed"]),
    ]
    rollout = make_rollout(environment=env, phases=plan, actor=actor)
    return services.rollout_start(rollout=rollout, actor=actor, source=UI, now=T0)


def test_checklist__unticked_steps__block_clock_and_people_until_all_ticked(
    staging, release_manager
):
    rollout = _checklist_rollout(staging, release_manager)
    later = T0 + 15 * MIN
    assert rollout.pk not in due_ids(later)
    assert tick(rollout, later) is False
    with pytest.raises(ApplicationError, match="Staging sign-off"):
        services.rollout_advance_now(
            rollout=rollout, actor=release_manager, source=UI, reason="go", now=later
        )
    first, second = ChecklistItem.objects.filter(phase__rollout=rollout).order_by("position")
    services.checklist_tick(item=first, actor=release_manager, source=UI, now=later)
    assert rollout.pk not in due_ids(later)
    item = services.checklist_tick(
        item=second, actor=release_manager, source=UI, note="deck sent", now=later
    )
    assert item.ticked_by == release_manager and item.ticked_at == later
    assert rollout.pk in due_ids(later)
    ticks = rollout.events.filter(kind=Kind.CHECKLIST_TICKED)
    assert sorted(e.data["label"] for e in ticks) == ["Staging sign-off", "Support briefed"]
    assert tick(rollout, later) is True


def test_checklist__untick__blocks_again(staging, release_manager):
    rollout = _checklist_rollout(staging, release_manager)
    items = list(ChecklistItem.objects.filter(phase__rollout=rollout))
    for item in items:
        services.checklist_tick(item=item, actor=release_manager, source=UI)
    services.checklist_tick(item=items[0], actor=release_manager, source=UI, ticked=False)
    assert rollout.pk not in due_ids(T0 + 15 * MIN)
    assert rollout.events.filter(kind=Kind.CHECKLIST_UNTICKED).count() == 1


def test_checklist__phase_already_applied__tick_refused(staging, release_manager):
    plan = [phase("Beta", 10, checklist=["Smoke test"]), phase("GA", 100, soak=10 * MIN)]
    rollout = make_rollout(environment=staging, phases=plan, actor=release_manager)
    item = ChecklistItem.objects.get(phase__rollout=rollout)
    services.checklist_tick(item=item, actor=release_manager, source=UI)
    services.rollout_start(rollout=rollout, actor=release_manager, source=UI, now=T0)
    with pytest.raises(ApplicationError, match="has started"):
        services.checklist_tick(item=item, actor=release_manager, source=UI, ticked=False)


def test_checklist__plan_edited__ticks_of_unchanged_steps_kept(staging, release_manager):
    rollout = _checklist_rollout(staging, release_manager)
    first = ChecklistItem.objects.get(label="Staging sign-off")
    services.checklist_tick(item=first, actor=release_manager, source=UI)
    plan = [
        phase("Beta", 10),
        phase("GA", 100, soak=10 * MIN, checklist=["Staging sign-off", "Runbook reviewed"]),
    ]
    services.rollout_plan_update(rollout=rollout, phases=plan, actor=release_manager, source=UI)
    labels = dict(
        ChecklistItem.objects.filter(phase__rollout=rollout).values_list("label", "ticked_by")
    )
    assert labels == {"Staging sign-off": release_manager.pk, "Runbook reviewed": None}


# --------------------------------------------------------------------------------------------
# Promotion: staging before production


def test_promotion__staging_rollout_unfinished__production_start_refused(
    staging, prod, release_manager
):
    gate_policy(prod, requires_completed_in=staging)
    release = ReleaseFactory(name="Checkout", version="2.0")
    on_staging = started(staging, 10, 100, release=release, actor=release_manager)
    in_prod = make_rollout(environment=prod, phases=soak_plan(10, 100), release=release)

    with pytest.raises(ApplicationError) as exc:
        services.rollout_start(rollout=in_prod, actor=release_manager, source=UI, now=T0)
    assert exc.value.code == "promotion"
    assert "must complete in Staging" in exc.value.message
    assert on_staging.key in exc.value.message
    assert reload(in_prod).state == State.DRAFT

    services.rollout_complete(rollout=on_staging, actor=release_manager, source=UI, now=T0)
    services.rollout_start(rollout=in_prod, actor=release_manager, source=UI, now=T0 + MIN)
    assert reload(in_prod).state == State.RUNNING


def test_promotion__no_staging_rollout_at_all__refused(staging, prod, release_manager):
    gate_policy(prod, requires_completed_in=staging)
    in_prod = make_rollout(environment=prod, phases=soak_plan(10, 100))
    with pytest.raises(ApplicationError, match="no rollout there yet"):
        services.rollout_start(rollout=in_prod, actor=release_manager, source=UI, now=T0)


def test_promotion__scheduled_production__waits_in_the_sweep_until_staging_completes(
    staging, prod, release_manager
):
    gate_policy(prod, requires_completed_in=staging)
    release = ReleaseFactory()
    on_staging = started(staging, 10, 100, release=release)
    plan = [phase("10%", 10, start_rule="at", start_at=T0 + 30 * MIN), phase("all", 100)]
    in_prod = make_rollout(environment=prod, phases=plan, release=release)
    services.rollout_schedule(rollout=in_prod, actor=release_manager, source=UI, now=T0)
    at_start = T0 + 31 * MIN
    assert in_prod.pk not in due_ids(at_start)
    assert tick(in_prod, at_start) is False
    services.rollout_complete(rollout=on_staging, actor=None, source=UI, now=at_start)
    assert in_prod.pk in due_ids(at_start)
    assert tick(in_prod, at_start) is True
    assert reload(in_prod).state == State.RUNNING


def test_policy__requires_itself_or_a_loop__refused(staging, prod):
    with pytest.raises(ApplicationError, match="itself"):
        gate_policy(prod, requires_completed_in=prod)
    gate_policy(prod, requires_completed_in=staging)
    with pytest.raises(ApplicationError, match="both ways"):
        gate_policy(staging, requires_completed_in=prod)


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


# --------------------------------------------------------------------------------------------
# Holds


def test_hold__manual__clock_stops_and_soak_resumes_where_it_stopped(staging, release_manager):
    rollout = started(staging, 10, 50)
    with pytest.raises(ApplicationError, match="Say why"):
        services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="")
    services.rollout_hold(
        rollout=rollout, actor=release_manager, source=UI, reason="checking logs", now=T0 + 4 * MIN
    )
    rollout = reload(rollout)
    assert rollout.state == State.HELD and rollout.next_due_at is None
    assert rollout.holds.get().created_by == release_manager
    assert tick(rollout, T0 + 60 * MIN) is False
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + 24 * MIN)
    # 4 of 10 minutes soaked before the hold; 6 remain after 20 held minutes.
    assert reload(rollout).next_due_at == T0 + 30 * MIN


def test_hold__scheduled_rollout__held_then_resumed_back_to_scheduled(staging, release_manager):
    plan = [phase("10%", 10, start_rule="at", start_at=T0 + 60 * MIN), phase("all", 100)]
    rollout = make_rollout(environment=staging, phases=plan)
    services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=T0)
    services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="wait")
    assert services.allowed_actions(reload(rollout)) == {"edit_plan", "resume", "cancel", "hold"}
    assert rollout.pk not in due_ids(T0 + 61 * MIN)
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + MIN)
    rollout = reload(rollout)
    assert rollout.state == State.SCHEDULED
    assert rollout.next_due_at == T0 + 60 * MIN


def test_hold_clear__last_hold__stays_paused_for_a_person(staging, release_manager):
    rollout = started(staging, 10, 50)
    services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="a")
    services.rollout_hold(rollout=rollout, actor=release_manager, source=UI, reason="b")
    first, second = reload(rollout).holds.order_by("id")
    services.rollout_hold_clear(hold=first, actor=release_manager, source=UI, now=T0 + MIN)
    assert reload(rollout).state == State.HELD
    services.rollout_hold_clear(hold=second, actor=release_manager, source=UI, now=T0 + MIN)
    rollout = reload(rollout)
    assert rollout.state == State.PAUSED
    assert rollout.paused_at is not None  # the clock is still stopped
    cleared = rollout.events.filter(kind=Kind.HOLD_CLEARED).order_by("id")
    assert [e.data["to_state"] for e in cleared] == [State.HELD, State.PAUSED]


# --------------------------------------------------------------------------------------------
# Alertmanager


def _receive(rollout: Rollout, *alerts: dict, now=T0 + MIN):
    parsed = services.alertmanager_parse(__import__("json").dumps(alert_payload(*alerts)))
    return services.alerts_receive(rollout=reload(rollout), alerts=parsed, now=now)


def test_alert__firing_with_rollout_label__held_and_clock_stops(staging):
    rollout = started(staging, 10, 50)
    [outcome] = _receive(rollout, alert(rollout=rollout.key))
    assert outcome.action == "held"
    rollout = reload(rollout)
    assert rollout.state == State.HELD
    hold = rollout.holds.get()
    assert hold.kind == Hold.Kind.ALERT and hold.alert_fingerprint == "f00dfeed"
    assert "HighErrorRate" in hold.reason and "5xx above 2%" in hold.reason
    held = rollout.events.get(kind=Kind.HELD)
    assert held.source == RolloutEvent.Source.ALERT
    assert tick(rollout, T0 + 60 * MIN) is False


def test_alert__firing_with_rollback_policy__rolled_back_to_the_rules_before(staging):
    rollout = started(staging, 10, 50, alert_policy=Rollout.AlertPolicy.ROLLBACK)
    assert share_on(staging, rollout.flag) > 0
    [outcome] = _receive(rollout, alert(rollout=rollout.key))
    assert outcome.action == "rolled_back"
    rollout = reload(rollout)
    assert rollout.state == State.ROLLED_BACK
    assert rollout.rollback_mode == Rollout.RollbackMode.RESTORE
    assert share_on(staging, rollout.flag) == 0
    assert rollout.events.get(kind=Kind.ROLLED_BACK).source == RolloutEvent.Source.ALERT


def test_alert__same_firing_sent_again__nothing_more_happens(staging):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key))
    events = rollout.events.count()
    [outcome] = _receive(rollout, alert(rollout=rollout.key), now=T0 + 5 * MIN)
    assert outcome.action == "duplicate"
    assert rollout.events.count() == events
    assert rollout.holds.count() == 1


def test_alert__same_firing_after_a_person_resumed__not_held_again(staging, release_manager):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key))
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + 2 * MIN)
    [outcome] = _receive(rollout, alert(rollout=rollout.key), now=T0 + 3 * MIN)
    assert outcome.action == "duplicate"
    assert reload(rollout).state == State.RUNNING


def test_alert__resolved__hold_cleared_but_rollout_stays_stopped(staging):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key))
    [outcome] = _receive(rollout, alert(rollout=rollout.key, status="resolved"), now=T0 + 9 * MIN)
    assert outcome.action == "cleared"
    rollout = reload(rollout)
    assert rollout.state == State.PAUSED
    assert rollout.next_due_at is None
    assert not rollout.holds.filter(cleared_at__isnull=True).exists()
    cleared = rollout.events.get(kind=Kind.HOLD_CLEARED)
    assert cleared.source == RolloutEvent.Source.ALERT
    assert cleared.data["to_state"] == State.PAUSED
    # Sent again: nothing more.
    [again] = _receive(rollout, alert(rollout=rollout.key, status="resolved"), now=T0 + 9 * MIN)
    assert again.action == "duplicate"
    assert rollout.events.filter(kind=Kind.HOLD_CLEARED).count() == 1


def test_alert__resolved_with_auto_resume__runs_again_with_the_soak_kept(staging):
    rollout = started(staging, 10, 50, alert_auto_resume=True)
    _receive(rollout, alert(rollout=rollout.key), now=T0 + 2 * MIN)
    _receive(rollout, alert(rollout=rollout.key, status="resolved"), now=T0 + 7 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.RUNNING
    assert rollout.next_due_at == T0 + 15 * MIN  # 5 held minutes added to the 10 min soak


def test_alert__two_alerts__held_until_both_resolved(staging):
    rollout = started(staging, 10, 50)
    _receive(rollout, alert(rollout=rollout.key, fingerprint="a1"), alert(rollout=rollout.key,
             fingerprint="b2"))  # fmt: skip
    assert reload(rollout).holds.filter(cleared_at__isnull=True).count() == 2
    _receive(rollout, alert(rollout=rollout.key, fingerprint="a1", status="resolved"))
    assert reload(rollout).state == State.HELD
    _receive(rollout, alert(rollout=rollout.key, fingerprint="b2", status="resolved"))
    assert reload(rollout).state == State.PAUSED


def test_alert__matchers_configured__matching_labels_hold_others_do_not(staging, release_manager):
    rollout = started(staging, 10, 50)
    matchers = 'service="checkout"\nseverity=~"page|critical"'
    services.rollout_alert_settings_update(
        rollout=rollout, actor=release_manager, alert_matchers=matchers
    )
    [other] = _receive(rollout, alert(service="search", fingerprint="x"))
    assert other.action == "not_matching"
    [elsewhere] = _receive(rollout, alert(service="checkout", rollout="another-rollout"))
    assert elsewhere.action == "not_matching"
    assert reload(rollout).state == State.RUNNING
    [ours] = _receive(rollout, alert(service="checkout"))
    assert ours.action == "held"


def test_alert__no_rollout_label_and_no_matchers__not_applied(staging):
    rollout = started(staging, 10, 50)
    [outcome] = _receive(rollout, alert(service="checkout"))
    assert outcome.action == "not_matching"
    assert reload(rollout).state == State.RUNNING


def test_alert__draft_or_final_rollout__ignored(staging):
    draft = make_rollout(environment=staging)
    [outcome] = _receive(draft, alert(rollout=draft.key))
    assert outcome.action == "ignored"
    assert reload(draft).state == State.DRAFT


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"version": "3", "alerts": []}', "version"),
        (b'{"version": "4", "alerts": {}}', "alerts"),
        (b'{"version": "4", "alerts": [1]}', "alerts.0"),
        (b'{"version": "4", "alerts": [{"status": "on"}]}', "alerts.0.status"),
        (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"a": 1}}]}',
         "alerts.0.labels"),
        (b'{"version": "4", "alerts": [{"status": "firing", "startsAt": "yesterday"}]}',
         "alerts.0.startsAt"),
    ],
)  # fmt: skip
def test_alertmanager_parse__bad_payload__refused_with_the_field(body, field):
    with pytest.raises(ApplicationError) as exc:
        services.alertmanager_parse(body)
    assert exc.value.field == field


def test_alertmanager_parse__unknown_keys__ignored():
    body = alert_payload(alert(rollout="x"), somethingNew={"a": 1})
    body["alerts"][0]["newField"] = [1, 2]
    [parsed] = services.alertmanager_parse(__import__("json").dumps(body))
    assert parsed.labels["rollout"] == "x" and parsed.status == "firing"


def test_parse_matchers__forms_and_errors():
    matchers = services.parse_matchers('{service="checkout", env!="dev"}\nseverity=~"page|crit"')
    assert [str(m) for m in matchers] == [
        'service="checkout"', 'env!="dev"', 'severity=~"page|crit"'
    ]  # fmt: skip
    assert matchers[2].matches({"severity": "page"})
    assert not matchers[2].matches({"severity": "pager"})  # anchored, like Alertmanager
    with pytest.raises(ApplicationError):
        services.parse_matchers('severity=~"("')
    with pytest.raises(ApplicationError):
        services.parse_matchers("just words")


def test_receiver_config__yaml_names_the_url_secret_and_matchers(staging):
    rollout = make_rollout(environment=staging)
    text = services.receiver_config(rollout, base_url="https://rollcall.example", show_secret=True)
    assert "url: https://rollcall.example/hooks/alertmanager" in text
    assert f"credentials: {rollout.alert_secret}" in text
    assert f'"rollout=\\"{rollout.key}\\""' in text
    assert "send_resolved: true" in text
    hidden = services.receiver_config(rollout, base_url="https://x", show_secret=False)
    assert rollout.alert_secret not in hidden


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
