"""Rollouts' part of `/metrics`: rollouts by state, how far live rollouts lag behind their
schedule, guarded-phase check outcomes, and the scheduler sweep (duration, last run).

The sweep runs in a worker; its duration is timed by Celery signals and kept in the cache, so
the web process serving `/metrics` can report it without touching the task itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from core.models import Heartbeat
from rollouts.models import PhaseCheck, Rollout

SWEEP_TASK = "rollouts.sweep"
SWEEP_KEY = "rollouts:metrics:sweep"
_STARTED: dict[str, float] = {}


def sweep_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and getattr(task, "name", "") == SWEEP_TASK:
        _STARTED[task_id] = time.monotonic()


def sweep_finished(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    started = _STARTED.pop(task_id or "", None)
    if started is not None:
        cache.set(
            SWEEP_KEY, {"duration": time.monotonic() - started, "at": time.time()}, timeout=None
        )


def collect() -> Iterable[Metric]:
    now = timezone.now()
    states = GaugeMetricFamily("rollcall_rollouts", "Rollouts by state.", labels=["state"])
    counts = dict(Rollout.objects.values_list("state").annotate(n=Count("id")).order_by())
    for state in Rollout.State.values:
        states.add_metric([state], counts.get(state, 0))
    yield states

    lag = GaugeMetricFamily(
        "rollcall_rollout_phase_lag_seconds",
        "How long a live rollout's next phase is overdue (0 when on time).",
        labels=["rollout", "environment"],
    )
    worst = 0.0
    live = Rollout.objects.filter(
        state__in=(Rollout.State.RUNNING, Rollout.State.SCHEDULED), next_due_at__isnull=False
    ).values_list("key", "environment__key", "next_due_at")
    for key, env, due in live:
        if due is None:
            continue
        seconds = max(0.0, (now - due).total_seconds())
        worst = max(worst, seconds)
        lag.add_metric([key, env], seconds)
    yield lag
    yield GaugeMetricFamily(
        "rollcall_rollout_phase_lag_seconds_max",
        "The largest lag of any live rollout behind its schedule.",
        value=worst,
    )

    checks = GaugeMetricFamily(
        "rollcall_phase_checks", "Guarded-phase checks by their latest result.", labels=["status"]
    )
    by_status = dict(
        PhaseCheck.objects.values_list("last_status").annotate(n=Count("id")).order_by()
    )
    for status in ("pass", "fail", "inconclusive", ""):
        checks.add_metric([status or "not_evaluated"], by_status.get(status, 0))
    yield checks

    beat = Heartbeat.objects.filter(name=SWEEP_TASK).values_list("last_seen", flat=True).first()
    yield GaugeMetricFamily(
        "rollcall_scheduler_last_run_timestamp_seconds",
        "When the scheduler sweep last ran (Unix time; 0 if never).",
        value=beat.timestamp() if beat else 0.0,
    )
    last = cache.get(SWEEP_KEY) or {}
    yield GaugeMetricFamily(
        "rollcall_scheduler_sweep_duration_seconds",
        "How long the latest scheduler sweep took (guarded-phase checks included).",
        value=float(last.get("duration", 0.0)),
    )
