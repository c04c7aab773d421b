"""rollouts.services.plans: creating a rollout and changing its plan; errors name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.exceptions import ApplicationError, ConflictError
from flags.models import Flag
from flags.services import flag_create
from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import (
    TEMPLATE,
    EnvironmentFactory,
    ReleaseFactory,
    beta_segment,
    make_rollout,
    phase,
    soak_plan,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
UI = RolloutEvent.Source.UI
State = Rollout.State
Kind = RolloutEvent.Kind


@pytest.fixture
def env():
    return EnvironmentFactory(key="staging", name="Staging")


def kinds(rollout: Rollout) -> list[str]:
    return list(rollout.events.order_by("at", "id").values_list("kind", flat=True))


def started(env, *percentages: int, soak: timedelta = 10 * MIN, **kw) -> Rollout:
    rollout = make_rollout(environment=env, phases=soak_plan(*percentages, soak=soak), **kw)
    return services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)


# --------------------------------------------------------------------------------------------
# Create and plan


def test_rollout_create__feature_flag_template__boolean_flag_and_beta_phases(env, release_manager):
    beta = beta_segment()
    rollout = make_rollout(environment=env, template="beta-5-25-50-100", actor=release_manager)
    phases = list(rollout.phases.order_by("order"))
    assert [p.percentage for p in phases] == [None, 5, 25, 50, 100]
    assert [p.segment_id for p in phases] == [beta.id, beta.id, beta.id, beta.id, None]
    assert [p.order for p in phases] == [0, 1, 2, 3, 4]
    assert rollout.flag.type == Flag.Type.BOOLEAN
    assert rollout.state == State.DRAFT
    assert rollout.owner == release_manager
    assert rollout.release.flags.filter(pk=rollout.flag.pk).exists()
    assert kinds(rollout) == [Kind.CREATED]


def test_rollout_create__no_plan_and_no_beta_segment__first_template_that_resolves(env):
    rollout = make_rollout(environment=env, phases=TEMPLATE)
    assert [p.percentage for p in rollout.phases.order_by("order")] == [5, 25, 50, 100]


def test_rollout_create__template_needs_missing_segment__error_on_template(env):
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, template="beta-5-25-50-100")
    assert exc.value.field == "template"
    assert "Beta testers" in exc.value.message


def test_rollout_create__blue_green__string_flag_with_blue_and_green(env):
    rollout = make_rollout(
        environment=env,
        strategy="blue_green",
        phases=[phase("Blue", 0), phase("Green", 100, soak=MIN)],
    )
    assert rollout.flag.type == Flag.Type.STRING
    assert {v["name"] for v in rollout.flag.variants} == {"blue", "green"}
    assert rollout.flag.key.endswith("-slot")


def test_rollout_create__existing_flag_of_wrong_type__error_on_flag(env):
    flag = flag_create(key="slots", name="Slots", actor=None)
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, strategy="blue_green", flag=flag, phases=[phase("B", 0)])
    assert exc.value.field == "flag"


def test_rollout_create__same_release_in_two_environments__drives_the_same_flag(env):
    prod = EnvironmentFactory(key="production")
    release = ReleaseFactory(name="Checkout", version="2")
    first = make_rollout(environment=env, release=release)
    second = make_rollout(environment=prod, release=release)
    assert first.flag_id == second.flag_id
    assert first.key != second.key
    assert Flag.objects.count() == 1


def test_rollout_create__unknown_time_zone__error_on_timezone(env):
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, timezone="Mars/Olympus")
    assert exc.value.field == "timezone"


@pytest.mark.parametrize("key", ["templates", "new", "has space", "dots.no"])
def test_rollout_create__reserved_or_invalid_key__error_on_key(env, key):
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, key=key)
    assert exc.value.field == "key"


def test_rollout_create__key_taken__error_on_key(env):
    make_rollout(environment=env, key="checkout")
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, key="checkout")
    assert exc.value.field == "key"


@pytest.mark.parametrize(
    ("phases", "field"),
    [
        ([], "phases"),
        ([phase("", 5)], "phases.0.name"),
        ([phase("A", 101)], "phases.0.percentage"),
        ([phase("A", -1)], "phases.0.percentage"),
        ([phase("A", None)], "phases.0.percentage"),
        ([phase("A", 50), phase("B", 10)], "phases.1.percentage"),
        ([phase("A", 5), phase("B", 10, soak=timedelta(seconds=-1))], "phases.1.soak"),
        ([phase("A", 5), phase("B", 10, soak="soon")], "phases.1.soak"),
        ([phase("A", 5, start_rule="at")], "phases.0.start_at"),
        ([phase("A", 5, start_rule="whenever")], "phases.0.start_rule"),
        ([phase("A", 5, gate="maybe")], "phases.0.gate"),
        ([phase("A", 5, segment=987654)], "phases.0.segment"),
        (
            [
                phase("A", 5, start_rule="at", start_at=T0 + 2 * MIN),
                phase("B", 10),
                phase("C", 20, start_rule="at", start_at=T0 + MIN),
            ],
            "phases.2.start_at",
        ),
    ],
)
def test_rollout_create__invalid_plan__error_names_the_field(env, phases, field):
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, phases=phases)
    assert exc.value.field == field
    assert not Rollout.objects.exists()


def test_rollout_create__decreasing_allowed__accepted(env):
    rollout = make_rollout(
        environment=env, phases=[phase("A", 50), phase("B", 10)], allow_decreasing=True
    )
    assert [p.percentage for p in rollout.phases.order_by("order")] == [50, 10]


def test_rollout_create__blue_green_half__error(env):
    with pytest.raises(ApplicationError) as exc:
        make_rollout(environment=env, strategy="blue_green", phases=[phase("Half", 50)])
    assert exc.value.field == "phases.0.percentage"


def test_rollout_create__naive_start_at__read_in_the_plan_time_zone(env):
    rollout = make_rollout(
        environment=env,
        timezone="Europe/Berlin",
        phases=[phase("A", 5, start_rule="at", start_at=datetime(2030, 7, 1, 9, 0))],
    )
    start = rollout.phases.get().start_at
    assert start == datetime(2030, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert start == datetime(2030, 7, 1, 7, 0, tzinfo=UTC)


def test_rollout_plan_update__unapplied_phase_changes__next_due_follows(env):
    rollout = started(env, 10, 50, 100)
    plan = soak_plan(10, 30, 100)
    plan[1]["soak"] = 20 * MIN
    updated = services.rollout_plan_update(
        rollout=rollout, phases=plan, actor=None, source=UI, expected_version=rollout.version,
        now=T0 + MIN,
    )  # fmt: skip
    assert [p.percentage for p in updated.phases.order_by("order")] == [10, 30, 100]
    assert updated.next_due_at == T0 + 20 * MIN
    assert kinds(updated)[-1] == Kind.PLAN_CHANGED


def test_rollout_plan_update__applied_phase_changes__error_on_that_field(env):
    rollout = started(env, 10, 50, 100)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_plan_update(
            rollout=rollout, phases=soak_plan(20, 50, 100), actor=None, source=UI, now=T0
        )
    assert exc.value.field == "phases.0.percentage"
    assert [p.percentage for p in rollout.phases.order_by("order")] == [10, 50, 100]


def test_rollout_plan_update__fewer_phases_than_applied__error(env):
    rollout = started(env, 10, 50, 100)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="ok", now=T0)
    with pytest.raises(ApplicationError) as exc:
        services.rollout_plan_update(
            rollout=rollout, phases=soak_plan(10), actor=None, source=UI, now=T0
        )
    assert exc.value.field == "phases"


def test_rollout_plan_update__stale_version__conflict(env):
    rollout = make_rollout(environment=env)
    with pytest.raises(ConflictError):
        services.rollout_plan_update(
            rollout=rollout,
            phases=soak_plan(5, 100),
            actor=None,
            source=UI,
            expected_version=rollout.version - 1,
            now=T0,
        )


def test_rollout_plan_update__shorter_plan__later_phases_deleted(env):
    rollout = make_rollout(environment=env, phases=soak_plan(5, 10, 50, 100))
    services.rollout_plan_update(
        rollout=rollout, phases=soak_plan(5, 100), actor=None, source=UI, now=T0
    )
    assert list(rollout.phases.order_by("order").values_list("percentage", flat=True)) == [5, 100]
