"""The demo always has a rollout in progress, however long after loading someone looks."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from rollouts import services
from rollouts.models import Rollout, RolloutEvent

pytestmark = pytest.mark.django_db
KEY = "checkout-v2-staging-canary"


def test_demo_canary__three_days_later__still_mid_flight():
    call_command("load_demo", stdout=StringIO())
    services.rollouts_advance_due(now=timezone.now() + timedelta(days=3))
    rollout = Rollout.objects.get(key=KEY)
    assert rollout.state == Rollout.State.RUNNING
    assert 0 < rollout.current_phase_index < rollout.phases.count() - 1


def test_demo_canary__finished__next_load_starts_a_fresh_one():
    call_command("load_demo", stdout=StringIO())
    old = Rollout.objects.get(key=KEY)
    services.rollout_complete(rollout=old, actor=None, source=RolloutEvent.Source.UI)
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        call_command("load_demo", stdout=StringIO())
    fresh = Rollout.objects.exclude(pk=old.pk).get(key__startswith=KEY)
    assert fresh.state == Rollout.State.RUNNING and fresh.flag_id == old.flag_id
    call_command("load_demo", stdout=StringIO())  # idempotent while one runs
    assert Rollout.objects.filter(key__startswith=KEY).count() == 2
