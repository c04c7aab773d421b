"""Rollout safety end to end: beat -> sweep -> workers advance a rollout until Alertmanager
posts a firing alert to its webhook (over HTTP); while held it does not move, however long the
soaks; the resolved alert clears the hold but leaves it paused; a person resumes it and the
scheduler carries it to the end."""

from __future__ import annotations

import time
from datetime import timedelta

import requests
from django.apps import apps

from core.schedules import ensure_periodic_task
from rollouts import services
from rollouts.models import Hold, Rollout, RolloutEvent
from tests.conftest import clear_own_cache
from tests.rollouts.factories import (
    EnvironmentFactory,
    alert,
    alert_payload,
    make_rollout,
    phase,
)

SOAK = timedelta(seconds=2)
PERCENTAGES = (10, 25, 50, 100)


def _state(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


def test_alertmanager_hold__mid_rollout__scheduler_does_not_advance_while_held(
    celery_processes, wait_for, live_server
):
    clear_own_cache()
    ensure_periodic_task(
        apps, name="Rollout scheduler sweep", task="rollouts.sweep", every_seconds=1
    )
    env = EnvironmentFactory(key="production", name="Production")
    rollout = make_rollout(
        environment=env,
        strategy="canary",
        phases=[phase(f"{p}%", p, soak=SOAK if i else None) for i, p in enumerate(PERCENTAGES)],
    )
    hook = f"{live_server.url}/hooks/alertmanager"
    auth = {"Authorization": f"Bearer {rollout.alert_secret}"}

    celery_processes.worker()
    celery_processes.beat(tick=1)
    time.sleep(1)  # let beat read its schedule before the clock starts
    services.rollout_start(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)

    # The scheduler moves it on its own to phase 2 ...
    wait_for(
        lambda: _state(rollout).current_phase_index >= 1,
        timeout=30,
        what="the scheduler to apply phase 2",
        logs=celery_processes,
    )
    # ... then Alertmanager posts a firing alert about it.
    firing = alert_payload(alert(rollout=rollout.key, starts_at="2030-01-01T00:00:00Z"))
    response = requests.post(hook, json=firing, headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["counts"] == {"held": 1}
    held = _state(rollout)
    assert held.state == Rollout.State.HELD
    index = held.current_phase_index
    assert index < len(PERCENTAGES) - 1, "the alert came too late to prove anything"

    # Three soaks' worth of ticks later it has not moved, and no advance was logged.
    time.sleep(3 * SOAK.total_seconds())
    still = _state(rollout)
    assert (still.state, still.current_phase_index) == (Rollout.State.HELD, index)
    held_at = rollout.events.get(kind=RolloutEvent.Kind.HELD).at
    assert not rollout.events.filter(kind=RolloutEvent.Kind.ADVANCED, at__gt=held_at).exists()

    # Re-sent (Alertmanager repeats notifications): nothing more happens.
    again = requests.post(hook, json=firing, headers=auth, timeout=10)
    assert again.json()["counts"] == {"duplicate": 1}
    assert Hold.objects.filter(rollout=rollout).count() == 1

    # Resolved: the hold clears, but the rollout waits for a person.
    resolved = alert_payload(
        alert(rollout=rollout.key, status="resolved", starts_at="2030-01-01T00:00:00Z")
    )
    assert requests.post(hook, json=resolved, headers=auth, timeout=10).json()["counts"] == {
        "cleared": 1
    }
    time.sleep(2 * SOAK.total_seconds())
    paused = _state(rollout)
    assert (paused.state, paused.current_phase_index) == (Rollout.State.PAUSED, index)

    # A person resumes it: the scheduler finishes the plan; the held time did not count as
    # soak (the phase after the hold is due a full soak after it was applied, plus the stop).
    services.rollout_resume(rollout=paused, actor=None, source=RolloutEvent.Source.UI)
    wait_for(
        lambda: _state(rollout).state == Rollout.State.COMPLETED,
        timeout=40,
        what="the rollout to complete after the resume",
        logs=celery_processes,
    )
    advanced = list(rollout.events.filter(kind=RolloutEvent.Kind.ADVANCED).order_by("at", "id"))
    assert [e.to_percentage for e in advanced] == list(PERCENTAGES)
    resumed_at = rollout.events.get(kind=RolloutEvent.Kind.RESUMED).at
    after = [e for e in advanced if e.at > held_at]
    assert after and all(e.at >= resumed_at for e in after)
