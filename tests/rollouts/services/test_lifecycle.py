"""rollouts.services.lifecycle: every transition (and every illegal one) with time passed in as
`now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ApplicationError, ConflictError
from flags.models import FlagState, Segment
from flags.services import flag_state_update, segment_create
from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from rollouts.services import lifecycle
from tests.rollouts.factories import (
    BETA_USERS,
    EnvironmentFactory,
    beta_segment,
    make_rollout,
    on_for,
    phase,
    share_on,
    soak_plan,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
SCHED = RolloutEvent.Source.SCHEDULER
State = Rollout.State
Kind = RolloutEvent.Kind


@pytest.fixture
def env():
    return EnvironmentFactory(key="staging", name="Staging")


def kinds(rollout: Rollout) -> list[str]:
    return list(rollout.events.order_by("at", "id").values_list("kind", flat=True))


def state_of(rollout: Rollout) -> FlagState:
    return FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def started(env, *percentages: int, soak: timedelta = 10 * MIN, **kw) -> Rollout:
    rollout = make_rollout(environment=env, phases=soak_plan(*percentages, soak=soak), **kw)
    return services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)


# --------------------------------------------------------------------------------------------
# Schedule and start


def test_rollout_schedule__draft_with_start_time__scheduled_and_due_then(env):
    rollout = make_rollout(
        environment=env,
        phases=[phase("A", 5, start_rule="at", start_at=T0 + 30 * MIN), phase("B", 50, soak=MIN)],
    )
    services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=T0)
    rollout = reload(rollout)
    assert rollout.state == State.SCHEDULED
    assert rollout.next_due_at == T0 + 30 * MIN
    assert state_of(rollout).enabled is False  # nothing applied yet
    event = rollout.events.get(kind=Kind.SCHEDULED)
    assert event.at == T0
    assert event.due_at == T0 + 30 * MIN


def test_rollout_schedule__first_phase_without_start_time__error(env):
    rollout = make_rollout(environment=env)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=T0)
    assert exc.value.field == "phases.0.start_at"
    assert reload(rollout).state == State.DRAFT


def test_rollout_schedule__start_time_passed__error(env):
    rollout = make_rollout(
        environment=env, phases=[phase("A", 5, start_rule="at", start_at=T0 - MIN)]
    )
    with pytest.raises(ApplicationError) as exc:
        services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=T0)
    assert exc.value.field == "phases.0.start_at"


def test_rollout_advance__scheduled_and_due__starts_with_due_at(env):
    rollout = make_rollout(
        environment=env,
        phases=[phase("A", 5, start_rule="at", start_at=T0 + 30 * MIN), phase("B", 50, soak=MIN)],
    )
    services.rollout_schedule(rollout=rollout, actor=None, source=UI, now=T0)
    early = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=-1, actor=None, source=SCHED,
        now=T0 + 29 * MIN,
    )  # fmt: skip
    assert early is False
    assert reload(rollout).state == State.SCHEDULED
    moved = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=-1, actor=None, source=SCHED,
        now=T0 + 30 * MIN + 5 * timedelta(seconds=1),
    )  # fmt: skip
    assert moved is True
    rollout = reload(rollout)
    assert rollout.state == State.RUNNING
    assert rollout.current_phase_index == 0
    advanced = rollout.events.get(kind=Kind.ADVANCED)
    assert advanced.due_at == T0 + 30 * MIN
    assert (advanced.at - advanced.due_at) == timedelta(seconds=5)
    assert advanced.source == SCHED


def test_rollout_start__draft__captures_flag_state_and_applies_phase_one(env, release_manager):
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, 100))
    before = flag_state_update(
        flag=rollout.flag,
        environment=env,
        actor=None,
        enabled=True,
        rules=[{"name": "userWithId", "parameters": {"userIds": "qa-1"}}],
    )
    services.rollout_start(rollout=rollout, actor=release_manager, source=UI, now=T0)
    rollout = reload(rollout)
    assert rollout.state == State.RUNNING
    assert rollout.current_phase_index == 0
    assert rollout.started_at == rollout.phase_started_at == T0
    assert rollout.next_due_at == T0 + 10 * MIN
    assert rollout.captured_state["rules"] == before.rules
    assert rollout.captured_state["enabled"] is True
    state = state_of(rollout)
    assert state.enabled is True
    assert state.rules == [
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "10", "stickiness": "default", "groupId": rollout.flag.key},
            "constraints": [],
            "segments": [],
            "variants": [],
            "title": f"Rollout {rollout.key}: 10%",
        }
    ]
    assert kinds(rollout) == [Kind.CREATED, Kind.STARTED, Kind.ADVANCED]
    advanced = rollout.events.get(kind=Kind.ADVANCED)
    assert (advanced.actor, advanced.at, advanced.to_phase_index) == (release_manager, T0, 0)
    assert advanced.to_percentage == 10
    assert rollout.phases.get(order=0).applied_at == T0


def test_rollout_start__flag_already_driven_by_a_live_rollout__error(env):
    first = started(env, 10, 100)
    second = make_rollout(environment=env, flag=first.flag)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_start(rollout=second, actor=None, source=UI, now=T0)
    assert first.key in exc.value.message
    assert reload(second).state == State.DRAFT


def test_rollout_start__flag_update_fails__nothing_changes(env, monkeypatch):
    rollout = make_rollout(environment=env)

    def boom(**kwargs):
        raise ApplicationError("flag store unavailable")

    monkeypatch.setattr(lifecycle, "flag_state_apply", boom)
    with pytest.raises(ApplicationError):
        services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    rollout = reload(rollout)
    assert rollout.state == State.DRAFT
    assert rollout.captured_state is None
    assert kinds(rollout) == [Kind.CREATED]  # event and change share one transaction


def test_rollout_start__single_phase__completes_at_once(env):
    rollout = started(env, 100)
    rollout = reload(rollout)
    assert rollout.state == State.COMPLETED
    assert rollout.finished_at == T0
    assert kinds(rollout)[-2:] == [Kind.ADVANCED, Kind.COMPLETED]


# --------------------------------------------------------------------------------------------
# The scheduler's advance


def test_rollout_advance__not_due__does_nothing(env):
    rollout = started(env, 10, 50, 100)
    moved = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED,
        now=T0 + 10 * MIN - timedelta(seconds=1),
    )  # fmt: skip
    assert moved is False
    assert reload(rollout).current_phase_index == 0
    assert kinds(rollout).count(Kind.ADVANCED) == 1


def test_rollout_advance__due__applies_next_phase_and_records_due_at(env):
    rollout = started(env, 10, 50, 100)
    now = T0 + 10 * MIN + timedelta(seconds=7)
    moved = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED, now=now
    )
    assert moved is True
    rollout = reload(rollout)
    assert rollout.current_phase_index == 1
    assert rollout.phase_started_at == now
    assert rollout.next_due_at == now + 10 * MIN  # the next soak counts from the real start
    event = rollout.events.filter(kind=Kind.ADVANCED).last()
    assert (event.from_phase_index, event.to_phase_index) == (0, 1)
    assert (event.from_percentage, event.to_percentage) == (10, 50)
    assert event.due_at == T0 + 10 * MIN
    assert event.at == now
    assert event.actor is None
    assert state_of(rollout).rules[0]["parameters"]["rollout"] == "50"


def test_rollout_advance__phase_already_applied__does_nothing(env):
    rollout = started(env, 10, 50, 100)
    now = T0 + 10 * MIN
    first = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED, now=now
    )
    version = reload(rollout).version
    again = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED, now=now + 30 * MIN
    )
    assert (first, again) == (True, False)
    rollout = reload(rollout)
    assert rollout.current_phase_index == 1  # not 2, although phase 3 is due by then
    assert rollout.version == version
    assert list(
        rollout.events.filter(kind=Kind.ADVANCED).values_list("to_phase_index", flat=True)
    ) == [0, 1]


def test_rollout_advance__last_phase__completes(env):
    rollout = started(env, 10, 100)
    services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 10 * MIN
    )
    rollout = reload(rollout)
    assert rollout.state == State.COMPLETED
    assert rollout.finished_at == T0 + 10 * MIN
    assert rollout.next_due_at is None
    assert kinds(rollout)[-2:] == [Kind.ADVANCED, Kind.COMPLETED]
    assert state_of(rollout).rules[0]["parameters"]["rollout"] == "100"


def test_rollout_advance__manual_gate__waits_for_a_person(env):
    rollout = make_rollout(
        environment=env, phases=[phase("A", 10), phase("B", 50, soak=MIN, gate="manual")]
    )
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    assert reload(rollout).next_due_at == T0 + MIN  # "a person may continue from then"
    moved = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 9 * MIN
    )
    assert moved is False
    assert services.rollouts_due(now=T0 + 9 * MIN) == []
    services.rollout_advance_now(
        rollout=rollout, actor=None, source=UI, reason="", now=T0 + 9 * MIN
    )
    rollout = reload(rollout)
    assert rollout.state == State.COMPLETED
    event = rollout.events.filter(kind=Kind.ADVANCED).last()
    assert event.data["gate"] == "manual"
    assert event.data["skipped_soak"] is False


@pytest.mark.parametrize("state", [State.PAUSED, State.HELD, State.DRAFT])
def test_rollout_advance__not_running__does_nothing(env, state):
    rollout = started(env, 10, 50)
    Rollout.objects.filter(pk=rollout.pk).update(state=state, next_due_at=T0)
    moved = services.rollout_advance(
        rollout_id=rollout.id, expected_phase_index=0, actor=None, source=SCHED, now=T0 + 1000 * MIN
    )
    assert moved is False
    assert reload(rollout).current_phase_index == 0


# --------------------------------------------------------------------------------------------
# Pause, hold, resume


def test_rollout_pause__running__soak_clock_stops_until_resumed(env, release_manager):
    rollout = started(env, 10, 50)  # phase 2 due at T0+10
    services.rollout_pause(
        rollout=rollout, actor=release_manager, source=UI, reason="errors", now=T0 + 4 * MIN
    )
    rollout = reload(rollout)
    assert rollout.state == State.PAUSED
    assert rollout.next_due_at is None
    assert services.rollouts_advance_due(now=T0 + 30 * MIN) == 0
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=T0 + 24 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.RUNNING
    assert rollout.paused_for == 20 * MIN
    assert rollout.next_due_at == T0 + 30 * MIN  # 6 minutes of soak were left
    assert services.rollouts_advance_due(now=T0 + 29 * MIN) == 0
    assert services.rollouts_advance_due(now=T0 + 30 * MIN) == 1
    assert kinds(rollout)[-4:] == [Kind.PAUSED, Kind.RESUMED, Kind.ADVANCED, Kind.COMPLETED]
    paused = rollout.events.get(kind=Kind.PAUSED)
    assert (paused.reason, paused.actor, paused.at) == ("errors", release_manager, T0 + 4 * MIN)
    assert rollout.events.get(kind=Kind.RESUMED).data["stopped_seconds"] == 20 * 60


def test_rollout_pause__exposure_stays(env):
    rollout = started(env, 10, 50)
    rules = state_of(rollout).rules
    services.rollout_pause(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    assert state_of(rollout).rules == rules


def test_rollout_resume__held__runs_again(env):
    rollout = started(env, 10, 50)
    Rollout.objects.filter(pk=rollout.pk).update(
        state=State.HELD, paused_at=T0 + 2 * MIN, next_due_at=None
    )
    services.rollout_resume(rollout=rollout, actor=None, source=UI, now=T0 + 5 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.RUNNING
    assert rollout.next_due_at == T0 + 13 * MIN
    assert rollout.events.get(kind=Kind.RESUMED).data["from_state"] == State.HELD


# --------------------------------------------------------------------------------------------
# Advance now, complete, cancel, roll back


def test_rollout_advance_now__soak_not_over__needs_a_reason(env):
    rollout = started(env, 10, 50, 100)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason=" ", now=T0)
    assert exc.value.field == "reason"
    assert reload(rollout).current_phase_index == 0


def test_rollout_advance_now__with_reason__applies_next_phase_now(env, release_manager):
    rollout = started(env, 10, 50, 100)
    services.rollout_advance_now(
        rollout=rollout, actor=release_manager, source=UI, reason="metrics fine", now=T0 + MIN
    )
    rollout = reload(rollout)
    assert rollout.current_phase_index == 1
    assert rollout.next_due_at == T0 + 11 * MIN
    event = rollout.events.filter(kind=Kind.ADVANCED).last()
    assert (event.reason, event.actor, event.data["skipped_soak"]) == (
        "metrics fine",
        release_manager,
        True,
    )


def test_rollout_advance_now__double_click__second_is_a_conflict(env):
    rollout = started(env, 10, 50, 100)
    services.rollout_advance_now(
        rollout=rollout, actor=None, source=UI, reason="go", now=T0, expected_phase_index=0
    )
    with pytest.raises(ConflictError):
        services.rollout_advance_now(
            rollout=rollout, actor=None, source=UI, reason="go", now=T0, expected_phase_index=0
        )
    assert reload(rollout).current_phase_index == 1


def test_rollout_complete__running_mid_way__last_exposure_applies(env):
    rollout = started(env, 10, 50, 100)
    services.rollout_complete(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    rollout = reload(rollout)
    assert rollout.state == State.COMPLETED
    assert rollout.current_phase_index == 2
    assert rollout.finished_at == T0 + MIN
    assert state_of(rollout).rules[0]["parameters"]["rollout"] == "100"
    assert rollout.events.filter(kind=Kind.ADVANCED).last().data["skipped_phases"] == [1]
    assert rollout.phases.get(order=1).applied_at is None


def test_rollout_complete__paused__completes(env):
    rollout = started(env, 10, 50, 100)
    services.rollout_pause(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    services.rollout_complete(rollout=rollout, actor=None, source=UI, now=T0 + 2 * MIN)
    rollout = reload(rollout)
    assert rollout.state == State.COMPLETED
    assert rollout.paused_at is None


def test_rollout_cancel__draft__nothing_applied(env):
    rollout = make_rollout(environment=env)
    services.rollout_cancel(rollout=rollout, actor=None, source=UI, reason="not now", now=T0)
    rollout = reload(rollout)
    assert rollout.state == State.CANCELLED
    assert rollout.finished_at == T0
    assert state_of(rollout).enabled is False
    assert rollout.events.get(kind=Kind.CANCELLED).reason == "not now"


def test_rollout_cancel__running__flag_keeps_its_exposure(env):
    rollout = started(env, 10, 50)
    rules = state_of(rollout).rules
    services.rollout_cancel(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    assert reload(rollout).state == State.CANCELLED
    assert state_of(rollout).rules == rules
    assert services.rollouts_advance_due(now=T0 + 100 * MIN) == 0


def _custom_rules():
    return [
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "30", "stickiness": "userId", "groupId": "legacy"},
            "constraints": [{"contextName": "country", "operator": "IN", "values": ["NL", "DE"]}],
        },
        {"name": "userWithId", "parameters": {"userIds": "qa-1,qa-2"}},
    ]


@pytest.mark.parametrize("before", ["running", "paused", "completed"])
def test_rollout_rollback__restores_exactly_the_captured_rules(env, release_manager, before):
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, 100))
    original = flag_state_update(
        flag=rollout.flag, environment=env, actor=None, enabled=True, rules=_custom_rules()
    )
    original_rules = original.rules
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go", now=T0)
    if before == "paused":
        services.rollout_pause(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    if before == "completed":
        services.rollout_complete(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    assert state_of(rollout).rules != original_rules
    services.rollout_rollback(
        rollout=rollout, actor=release_manager, source=UI, reason="errors up", now=T0 + 2 * MIN
    )
    rollout = reload(rollout)
    state = state_of(rollout)
    assert (state.enabled, state.rules) == (True, original_rules)
    assert rollout.state == State.ROLLED_BACK
    assert rollout.finished_at == T0 + 2 * MIN
    event = rollout.events.get(kind=Kind.ROLLED_BACK)
    assert (event.reason, event.actor, event.to_percentage) == ("errors up", release_manager, 0)


def test_rollout_rollback__captured_rule_names_a_deleted_segment__rest_restored(env):
    doomed = segment_create(name="Doomed", actor=None, constraints=[])
    rules = [
        {"name": "flexibleRollout", "parameters": {"rollout": "100"}, "segments": [doomed.id]},
        {"name": "userWithId", "parameters": {"userIds": "qa-1"}},
    ]
    rollout = make_rollout(environment=env)
    kept = flag_state_update(
        flag=rollout.flag, environment=env, actor=None, enabled=True, rules=rules
    ).rules[1:]
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    Segment.objects.filter(pk=doomed.pk).delete()  # unused by live rules during the rollout
    services.rollout_rollback(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    assert state_of(rollout).rules == kept
    assert rollout.events.get(kind=Kind.ROLLED_BACK).data["dropped_rules"] == [1]


def test_rollout_rollback__flag_was_off__off_again(env):
    rollout = started(env, 10, 50)
    assert state_of(rollout).enabled is True
    services.rollout_rollback(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    state = state_of(rollout)
    assert (state.enabled, state.rules) == (False, [])


def test_rollout_rollback__blue_green__previous_slot_at_once(env):
    rollout = make_rollout(
        environment=env,
        strategy="blue_green",
        phases=[phase("Blue", 0), phase("Green", 100, soak=MIN)],
    )
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go", now=T0)
    assert state_of(rollout).rules[0]["variants"][0]["name"] == "green"
    services.rollout_rollback(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    state = state_of(rollout)
    assert state.enabled is True
    assert [r["variants"][0]["name"] for r in state.rules] == ["blue"]
    assert _slot(env, rollout) == {"blue"}


def _slot(env, rollout: Rollout) -> set[str | None]:
    """The slots 200 callers are sent to (None: no value, the caller's default decides)."""
    from tests.rollouts.factories import snapshot_for

    snap = snapshot_for(env)
    answers = set()
    for i in range(200):
        ev = snap.evaluate(rollout.flag.key, {"userId": f"u{i}"})
        answers.add((ev.payload or {}).get("value") if ev.variant_enabled else None)
    return answers


def test_rollout_create__blue_green_new_flag__answers_blue_explicitly_before_the_start(env):
    rollout = make_rollout(
        environment=env,
        strategy="blue_green",
        phases=[phase("Blue", 0), phase("Green", 100, soak=MIN)],
    )
    assert _slot(env, rollout) == {"blue"}
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    assert _slot(env, rollout) == {"blue"}
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go", now=T0)
    assert _slot(env, rollout) == {"green"}


def test_rollout_rollback__blue_green_captured_flag_off__blue_explicitly(env):
    rollout = make_rollout(
        environment=env,
        strategy="blue_green",
        phases=[phase("Blue", 0), phase("Green", 100, soak=MIN)],
    )
    flag_state_update(flag=rollout.flag, environment=env, actor=None, enabled=False, rules=[])
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go", now=T0)
    services.rollout_rollback(rollout=rollout, actor=None, source=UI, now=T0 + MIN)
    assert _slot(env, rollout) == {"blue"}


# --------------------------------------------------------------------------------------------
# Exposure as users see it


def test_rollout_exposure__percentage_grows__nobody_flips_back(env):
    rollout = started(env, 10, 50, 100)
    at_10 = on_for(env, rollout.flag)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go", now=T0)
    at_50 = on_for(env, rollout.flag)
    assert 50 < len(at_10) < 150
    assert 420 < len(at_50) < 580
    assert at_10 <= at_50


def test_rollout_exposure__beta_testers_then_percentage__beta_keep_it(env):
    beta = beta_segment()
    rollout = make_rollout(
        environment=env,
        phases=[phase("Beta", None, segment=beta.id), phase("5%", 5, segment=beta.id, soak=MIN)],
    )
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    from tests.rollouts.factories import snapshot_for

    snap = snapshot_for(env)
    assert all(snap.evaluate(rollout.flag.key, {"userId": u}).enabled for u in BETA_USERS)
    assert share_on(env, rollout.flag) == 0
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="go", now=T0)
    snap = snapshot_for(env)
    assert all(snap.evaluate(rollout.flag.key, {"userId": u}).enabled for u in BETA_USERS)
    assert 0.02 < share_on(env, rollout.flag) < 0.09


# --------------------------------------------------------------------------------------------
# The state machine, exhaustively: every action in every state


ALLOWED = {
    State.DRAFT: {"edit_plan", "schedule", "start", "cancel"},
    # "hold" added with rollout safety (a person can hold any live rollout with a reason).
    State.SCHEDULED: {"edit_plan", "start", "cancel", "hold"},
    State.RUNNING: {"edit_plan", "pause", "advance_now", "complete", "cancel", "rollback", "hold"},
    State.PAUSED: {"edit_plan", "resume", "complete", "cancel", "rollback", "hold"},
    State.HELD: {"edit_plan", "resume", "complete", "cancel", "rollback", "hold"},
    State.COMPLETED: {"rollback"},
    State.ROLLED_BACK: set(),
    State.CANCELLED: set(),
}
LATER = T0 + 5 * MIN


def _plan():
    return [
        phase("A", 10, start_rule="at", start_at=T0 + 60 * MIN),
        phase("B", 50, soak=10 * MIN),
        phase("C", 100, soak=10 * MIN),
    ]


def rollout_in(env, state: str) -> Rollout:
    rollout = make_rollout(environment=env, phases=_plan())
    kw = {"actor": None, "source": UI}
    if state == State.SCHEDULED:
        services.rollout_schedule(rollout=rollout, now=T0, **kw)
    if state in (State.RUNNING, State.PAUSED, State.HELD, State.COMPLETED, State.ROLLED_BACK):
        services.rollout_start(rollout=rollout, now=T0, **kw)
    if state == State.PAUSED:
        services.rollout_pause(rollout=rollout, now=T0 + MIN, **kw)
    if state == State.HELD:
        Rollout.objects.filter(pk=rollout.pk).update(
            state=State.HELD, paused_at=T0 + MIN, next_due_at=None
        )
    if state == State.COMPLETED:
        services.rollout_complete(rollout=rollout, now=T0 + MIN, **kw)
    if state == State.ROLLED_BACK:
        services.rollout_rollback(rollout=rollout, now=T0 + MIN, **kw)
    if state == State.CANCELLED:
        services.rollout_cancel(rollout=rollout, now=T0 + MIN, **kw)
    rollout = reload(rollout)
    assert rollout.state == state
    return rollout


ACTIONS = {
    "edit_plan": lambda r: services.rollout_plan_update(
        rollout=r, phases=_plan(), actor=None, source=UI, now=LATER
    ),
    "schedule": lambda r: services.rollout_schedule(rollout=r, actor=None, source=UI, now=LATER),
    "start": lambda r: services.rollout_start(rollout=r, actor=None, source=UI, now=LATER),
    "pause": lambda r: services.rollout_pause(rollout=r, actor=None, source=UI, now=LATER),
    "resume": lambda r: services.rollout_resume(rollout=r, actor=None, source=UI, now=LATER),
    "advance_now": lambda r: services.rollout_advance_now(
        rollout=r, actor=None, source=UI, reason="skip", now=LATER
    ),
    "complete": lambda r: services.rollout_complete(rollout=r, actor=None, source=UI, now=LATER),
    "cancel": lambda r: services.rollout_cancel(rollout=r, actor=None, source=UI, now=LATER),
    "rollback": lambda r: services.rollout_rollback(rollout=r, actor=None, source=UI, now=LATER),
}
EXPECTED_STATE = {
    "schedule": State.SCHEDULED,
    "start": State.RUNNING,
    "pause": State.PAUSED,
    "resume": State.RUNNING,
    "complete": State.COMPLETED,
    "cancel": State.CANCELLED,
    "rollback": State.ROLLED_BACK,
}


@pytest.mark.parametrize("state", list(ALLOWED))
def test_allowed_actions__each_state__matches_the_state_machine(env, state):
    assert services.allowed_actions(rollout_in(env, state)) == ALLOWED[state]


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_transition__every_action_in_every_state(env, state, action):
    rollout = rollout_in(env, state)
    events_before = rollout.events.count()
    if action in ALLOWED[state]:
        ACTIONS[action](rollout)
        after = reload(rollout)
        assert after.version > rollout.version
        assert after.events.count() > events_before
        assert after.events.order_by("-id").first().at == LATER
        if action in EXPECTED_STATE:
            assert after.state == EXPECTED_STATE[action]
        if action == "advance_now":
            assert after.current_phase_index == rollout.current_phase_index + 1
    else:
        with pytest.raises(ApplicationError) as exc:
            ACTIONS[action](rollout)
        after = reload(rollout)
        assert after.state == state
        assert after.version == rollout.version
        assert after.events.count() == events_before
        assert exc.value.code == "illegal_transition"
        assert rollout.key in exc.value.message
