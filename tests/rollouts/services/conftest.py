"""Environments shared by the rollout service tests."""

from __future__ import annotations

import pytest

from tests.rollouts.factories import EnvironmentFactory


@pytest.fixture
def prod():
    return EnvironmentFactory(key="production", name="Production", is_production=True)


@pytest.fixture
def staging():
    return EnvironmentFactory(key="staging", name="Staging")
