"""Flags' part of `/metrics`: evaluations per environment (as reported by SDKs and counted
from OFREP) and the staleness of this process's compiled snapshots."""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db.models import Sum
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from flags import freshness, snapshot
from flags.models import Environment, FlagUsage


def collect() -> Iterable[Metric]:
    evaluations = CounterMetricFamily(
        "rollcall_flag_evaluations",
        "Flag evaluations reported by SDKs or counted from OFREP, per environment and source.",
        labels=["environment", "source"],
    )
    rows = (
        FlagUsage.objects.values_list("environment__key", "source")
        .annotate(yes=Sum("yes"), no=Sum("no"))
        .order_by()
    )
    for env, source, yes, no in rows:
        evaluations.add_metric([env, source], float((yes or 0) + (no or 0)))
    yield evaluations

    age = GaugeMetricFamily(
        "rollcall_flags_snapshot_age_seconds",
        "Seconds since this process last checked its compiled snapshot of an environment.",
        labels=["environment"],
    )
    behind = GaugeMetricFamily(
        "rollcall_flags_snapshot_versions_behind",
        "Config versions this process's snapshot is behind the database (0: current).",
        labels=["environment"],
    )
    versions = dict(Environment.objects.values_list("id", "config_version"))
    keys = dict(Environment.objects.values_list("id", "key"))
    # Every snapshot is re-checked against the shared change check at once; its age is the
    # age of that check.
    checked = freshness.current().checked_at
    age_seconds = max(0.0, time.monotonic() - checked) if checked != float("-inf") else 0.0
    for env_id, compiled in list(snapshot._LOCAL.items()):
        if env_id not in keys:
            continue
        age.add_metric([keys[env_id]], age_seconds)
        behind.add_metric([keys[env_id]], max(0, versions[env_id] - compiled.version))
    yield age
    yield behind
