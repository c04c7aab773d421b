"""The admin shows releases, rollouts and events; rollout changes go through services."""

from __future__ import annotations

import pytest

from rollouts.models import Rollout, RolloutEvent
from rollouts.services import rollout_start
from tests.rollouts.factories import EnvironmentFactory, make_rollout

pytestmark = pytest.mark.django_db


@pytest.fixture
def running():
    rollout = make_rollout(environment=EnvironmentFactory(key="staging"))
    return rollout_start(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)


@pytest.mark.parametrize(
    ("url", "shows"),
    [
        ("/admin/rollouts/release/", lambda r: r.release.name),
        ("/admin/rollouts/rollout/", lambda r: r.key),
        ("/admin/rollouts/rolloutevent/", lambda r: "Phase started"),
    ],
)
def test_admin__lists__render(admin_client_role, running, url, shows):
    response = admin_client_role.get(url)
    assert response.status_code == 200
    assert shows(running) in response.content.decode()


def test_admin__rollout_page__renders_with_phases(admin_client_role, running):
    response = admin_client_role.get(f"/admin/rollouts/rollout/{running.pk}/change/")
    assert response.status_code == 200
    assert b"10%" in response.content


def test_admin__pause_action__goes_through_the_service(admin_client_role, running):
    response = admin_client_role.post(
        "/admin/rollouts/rollout/",
        {"action": "pause", "_selected_action": [running.pk]},
    )
    assert response.status_code == 302
    running.refresh_from_db()
    assert running.state == Rollout.State.PAUSED
    event = running.events.get(kind=RolloutEvent.Kind.PAUSED)
    assert event.actor.username == "ada"


def test_admin__safety_models__listed_read_only(admin_client_role, running):
    from datetime import UTC, datetime

    from rollouts.services import rollout_hold
    from tests.rollouts.factories import freeze

    freeze(
        "Admin freeze",
        starts_at=datetime(2040, 1, 1, tzinfo=UTC),
        ends_at=datetime(2040, 1, 2, tzinfo=UTC),
    )
    rollout_hold(rollout=running, actor=None, source=RolloutEvent.Source.UI, reason="admin hold")
    assert "Admin freeze" in admin_client_role.get("/admin/rollouts/freezewindow/").content.decode()
    assert "admin hold" in admin_client_role.get("/admin/rollouts/hold/").content.decode()
    assert admin_client_role.get("/admin/rollouts/freezewindow/add/").status_code == 403
