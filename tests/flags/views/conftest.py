"""Fixtures of the flags UI tests: three environments, a flag, a segment, a rollout."""

from __future__ import annotations

import pytest

from flags import services
from tests.flags.factories import EnvironmentFactory
from tests.flags.views.helpers import BETA, state_in


@pytest.fixture
def envs(db):
    return [
        EnvironmentFactory(key="development", name="Development", order=0),
        EnvironmentFactory(key="staging", name="Staging", order=1),
        EnvironmentFactory(key="production", name="Production", order=2, is_production=True),
    ]


@pytest.fixture
def flag(envs):
    return services.flag_create(key="new-checkout", name="New checkout", actor=None)


@pytest.fixture
def beta(db):
    return services.segment_create(name="Beta testers", constraints=BETA, actor=None)


@pytest.fixture
def rolled_out(flag, beta):
    env = state_in(flag).environment
    services.flag_state_update(
        flag=flag,
        environment=env,
        enabled=True,
        rules=[
            {
                "name": "flexibleRollout",
                "parameters": {"rollout": "100"},
                "segments": [beta.pk],
                "title": "Beta testers",
            },
            {"name": "flexibleRollout", "parameters": {"rollout": "0"}},
        ],
        actor=None,
    )
    return flag
