"""rollouts.services.failures: a scheduled step that raises is recorded, backs off and, after the
retry budget, holds its rollout with the error; the other rollouts of the batch go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ApplicationError
from rollouts import services
from rollouts.models import AdvanceFailure, Hold, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
State = Rollout.State


@pytest.fixture(autouse=True)
def budget(settings):
    settings.ROLLCALL_RETRY_MAX_ATTEMPTS = 3
    settings.ROLLCALL_RETRY_BACKOFF_SECONDS = 60


def started(env, count: int) -> list[Rollout]:
    rollouts = []
    for _ in range(count):
        rollout = make_rollout(environment=env, phases=soak_plan(10, 50, 100, soak=10 * MIN))
        rollouts.append(services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0))
    return rollouts


def poison(rollout: Rollout) -> None:
    """A strategy that no longer exists (e.g. removed by an upgrade): every advance raises."""
    Rollout.objects.filter(pk=rollout.pk).update(strategy="retired-strategy")


def index(rollout: Rollout) -> int:
    return Rollout.objects.values_list("current_phase_index", flat=True).get(pk=rollout.pk)


def test_advance_due__one_failing_in_a_batch__others_advance_failure_recorded():
    env = EnvironmentFactory()
    rollouts = started(env, 5)
    poison(rollouts[0])  # the oldest due: first in the batch

    moved = services.rollouts_advance_due(now=T0 + 10 * MIN)

    assert moved == 4
    assert [index(r) for r in rollouts] == [0, 1, 1, 1, 1]
    failure = AdvanceFailure.objects.get(rollout=rollouts[0])
    assert failure.attempts == 1
    assert "Unknown strategy 'retired-strategy'" in failure.last_error
    assert failure.retry_at == T0 + 11 * MIN
    assert Rollout.objects.get(pk=rollouts[0].pk).state == State.RUNNING


def test_advance_due__failed_step__not_due_until_its_backoff_ends():
    rollouts = started(EnvironmentFactory(), 1)
    poison(rollouts[0])
    services.rollouts_advance_due(now=T0 + 10 * MIN)

    assert services.rollouts_due(now=T0 + 10 * MIN + 59 * timedelta(seconds=1)) == []
    assert services.rollouts_due(now=T0 + 11 * MIN) == [(rollouts[0].id, 0)]


def test_advance_due__budget_spent__rollout_held_with_the_error_as_reason():
    rollout = started(EnvironmentFactory(), 1)[0]
    poison(rollout)
    now = T0 + 10 * MIN
    for _ in range(3):
        services.rollouts_advance_due(now=now)
        now += 10 * MIN  # well past each backoff

    rollout.refresh_from_db()
    assert rollout.state == State.HELD
    hold = Hold.objects.get(rollout=rollout, cleared_at__isnull=True)
    assert hold.kind == Hold.Kind.FAILING
    assert hold.reason.startswith("The scheduler could not start phase 2 (50%) after 3 attempts")
    assert "retired-strategy" in hold.reason
    assert services.rollouts_due(now=now + 60 * MIN) == []
    assert rollout.events.filter(kind=RolloutEvent.Kind.HELD).count() == 1


def test_advance_due__step_succeeds_after_a_failure__failure_forgotten():
    rollout = started(EnvironmentFactory(), 1)[0]
    Rollout.objects.filter(pk=rollout.pk).update(strategy="retired-strategy")
    services.rollouts_advance_due(now=T0 + 10 * MIN)
    Rollout.objects.filter(pk=rollout.pk).update(strategy=Rollout.Strategy.FEATURE_FLAG)

    assert services.rollouts_advance_due(now=T0 + 12 * MIN) == 1
    assert not AdvanceFailure.objects.filter(rollout=rollout).exists()


def test_advance_failure_retry__held_rollout__runs_again_and_advances_next_tick(admin_user):
    rollout = started(EnvironmentFactory(), 1)[0]
    poison(rollout)
    now = T0 + 10 * MIN
    for _ in range(3):
        services.rollouts_advance_due(now=now)
        now += 10 * MIN
    Rollout.objects.filter(pk=rollout.pk).update(strategy=Rollout.Strategy.FEATURE_FLAG)

    services.advance_failure_retry(rollout_id=rollout.id, actor=admin_user, now=now)

    rollout.refresh_from_db()
    assert rollout.state == State.RUNNING
    assert services.advance_failures_open() == []  # attempts reset, nothing failing now
    assert services.rollouts_advance_due(now=now) == 1
    assert index(rollout) == 1


def test_advance_failure_discard__backing_off__held_by_the_person_with_the_reason(admin_user):
    rollout = started(EnvironmentFactory(), 1)[0]
    poison(rollout)
    services.rollouts_advance_due(now=T0 + 10 * MIN)

    services.advance_failure_discard(
        rollout_id=rollout.id, actor=admin_user, reason="Strategy retired; roll back by hand."
    )

    rollout.refresh_from_db()
    assert rollout.state == State.HELD
    hold = Hold.objects.get(rollout=rollout, cleared_at__isnull=True)
    assert hold.created_by == admin_user
    assert "Strategy retired" in hold.reason
    assert not AdvanceFailure.objects.filter(rollout=rollout).exists()


def test_advance_failure_retry__nothing_failing__refused(admin_user):
    rollout = started(EnvironmentFactory(), 1)[0]
    with pytest.raises(ApplicationError, match="not failing"):
        services.advance_failure_retry(rollout_id=rollout.id, actor=admin_user)


def test_person_resumes_held_rollout__next_failure_starts_a_fresh_count(release_manager):
    rollout = started(EnvironmentFactory(), 1)[0]
    poison(rollout)
    now = T0 + 10 * MIN
    for _ in range(3):
        services.rollouts_advance_due(now=now)
        now += 10 * MIN
    services.rollout_resume(rollout=rollout, actor=release_manager, source=UI, now=now)

    services.rollouts_advance_due(now=now + 60 * MIN)

    failure = AdvanceFailure.objects.get(rollout=rollout)
    assert failure.attempts == 1
    assert failure.hold is None
    assert Rollout.objects.get(pk=rollout.pk).state == State.RUNNING
