"""Gates and the people at them (rollouts.services.gates and .approvals): approvals,
checklists, promotion and policies. Time is always passed in as `now`."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import Approval, ChecklistItem, Hold, Rollout, RolloutEvent
from tests.rollouts.factories import (
    ReleaseFactory,
    gate_policy,
    make_rollout,
    phase,
    soak_plan,
)
from tests.rollouts.services.helpers import MIN, T0, reload, started

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


def kinds(rollout: Rollout) -> list[str]:
    return list(rollout.events.order_by("at", "id").values_list("kind", flat=True))


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
