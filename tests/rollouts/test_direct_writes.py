"""One path to production: direct flag-state writes follow the environment's approval policy.

UI toggle, management API `PUT` and import are refused with a message saying how to get the
change approved when they would expose users at the policy's level; turning a flag off is
never blocked; a rollout's own phases go through their approval gates instead.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.exceptions import ApplicationError
from flags import services as flag_services
from flags.importexport import flags_import
from flags.models import FlagState
from rollouts import services
from rollouts.models import RolloutEvent
from tests.flags.factories import EnvironmentFactory
from tests.rollouts.factories import gate_policy, make_rollout, soak_plan

pytestmark = pytest.mark.django_db

ALL = [{"name": "flexibleRollout", "parameters": {"rollout": "100"}}]
FEW = [{"name": "flexibleRollout", "parameters": {"rollout": "5"}}]


@pytest.fixture
def prod():
    env = EnvironmentFactory(key="production", name="Production", is_production=True)
    gate_policy(env, min_percentage=50)
    return env


@pytest.fixture
def flag(prod):
    return flag_services.flag_create(key="new-checkout", name="New checkout", actor=None)


def _state(flag, env) -> FlagState:
    return FlagState.objects.get(flag=flag, environment=env)


def test_flag_state_update__policy_reaching_50__refused_with_how_to_get_approval(flag, prod):
    with pytest.raises(ApplicationError, match="start a rollout of new-checkout") as exc:
        flag_services.flag_state_update(
            flag=flag, environment=prod, actor=None, enabled=True, rules=ALL
        )
    assert exc.value.code == "approval_required"
    assert "Production asks for approval of changes reaching 50%" in exc.value.message
    assert _state(flag, prod).enabled is False


def test_flag_state_update__below_policy_level__allowed(flag, prod):
    flag_services.flag_state_update(
        flag=flag, environment=prod, actor=None, enabled=True, rules=FEW
    )
    assert _state(flag, prod).enabled is True


def test_flag_toggle__turning_off__never_needs_approval(flag, prod):
    flag_services.flag_state_update(
        flag=flag, environment=prod, actor=None, enabled=True, rules=FEW
    )
    FlagState.objects.filter(flag=flag, environment=prod).update(rules=ALL)  # exposed somehow
    flag_services.flag_toggle(flag=flag, environment=prod, enabled=False, actor=None)
    assert _state(flag, prod).enabled is False


def test_flag_state_update__no_policy__allowed(flag):
    staging = EnvironmentFactory(key="staging", name="Staging")
    flag_services.flag_state_update(
        flag=flag, environment=staging, actor=None, enabled=True, rules=ALL
    )
    assert _state(flag, staging).enabled is True


def test_rollout__policy_environment__phase_to_100_applies_once_approved(
    prod, release_manager, approver
):
    rollout = make_rollout(environment=prod, phases=soak_plan(100), actor=release_manager)
    services.approval_request(rollout=rollout, actor=release_manager, source=RolloutEvent.Source.UI)
    approval = rollout.approvals.get()
    services.approval_decide(
        approval=approval, actor=approver, decision="approve", source=RolloutEvent.Source.UI
    )
    services.rollout_start(rollout=rollout, actor=release_manager, source=RolloutEvent.Source.UI)
    assert _state(rollout.flag, prod).rules[0]["parameters"]["rollout"] == "100"


def test_api_put__policy_environment__400_with_approval_message(rm_client, flag, prod):
    response = rm_client.put(
        f"/api/v1/flags/{flag.key}/environments/production/",
        {"enabled": True, "rules": ALL, "version": 1},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "start a rollout of new-checkout in Production" in response.json()["message"]
    assert _state(flag, prod).enabled is False


def test_ui_toggle__policy_environment__refused_with_message_not_500(rm_client, flag, prod):
    response = rm_client.post(
        reverse("flags:toggle", args=[flag.key, "production"]), {"enabled": "on"}, follow=True
    )
    assert response.status_code == 200
    assert "asks for approval" in response.content.decode()
    assert _state(flag, prod).enabled is False


def test_import__over_policy_environment__refused_nothing_changed(flag, prod):
    document = {
        "version": 1,
        "features": [
            {"name": "new-checkout", "type": "release", "enabled": True, "strategies": ALL}
        ],
    }
    with pytest.raises(ApplicationError, match="asks for approval"):
        flags_import(environment=prod, data=document, actor=None)
    assert _state(flag, prod).enabled is False
