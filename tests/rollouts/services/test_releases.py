"""rollouts.services.releases: creating and editing releases."""

from __future__ import annotations

import pytest

from core.exceptions import ApplicationError
from flags.services import flag_create
from rollouts import services
from rollouts.models import Phase
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, soak_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def env():
    return EnvironmentFactory(key="staging", name="Staging")


# --------------------------------------------------------------------------------------------
# Releases


def test_release_create__valid__stored_with_flags(release_manager):
    flag = flag_create(key="dark-mode", name="Dark mode", actor=None)
    release = services.release_create(
        name=" Dark mode ", version="1.2", label="improvement", flags=[flag], actor=release_manager
    )
    assert release.name == "Dark mode"
    assert release.owner == release_manager
    assert list(release.flags.all()) == [flag]


@pytest.mark.parametrize(("fields", "field"), [({"name": " "}, "name"), ({"label": "x"}, "label")])
def test_release_create__invalid__error_names_the_field(fields, field):
    with pytest.raises(ApplicationError) as exc:
        services.release_create(**{"name": "Ok", **fields}, actor=None)
    assert exc.value.field == field


def test_release_update__fields__changed_and_unknown_field_refused(release_manager):
    release = ReleaseFactory()
    services.release_update(release=release, actor=release_manager, summary="New words")
    release.refresh_from_db()
    assert release.summary == "New words"
    with pytest.raises(ApplicationError) as exc:
        services.release_update(release=release, actor=release_manager, colour="red")
    assert exc.value.field == "colour"


def test_phase_model__orders_are_indexes(env):
    rollout = make_rollout(environment=env, phases=soak_plan(1, 2, 3, 4))
    assert list(Phase.objects.filter(rollout=rollout).values_list("order", flat=True)) == [
        0,
        1,
        2,
        3,
    ]
