"""Comms' part of `/metrics`: notice deliveries by state, and dead ones (a worker took them
and vanished: `sending` for longer than COMMS_DELIVERY_STALE_SECONDS)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from comms.models import Delivery


def collect() -> Iterable[Metric]:
    by_state = dict(Delivery.objects.values_list("state").annotate(n=Count("id")).order_by())
    deliveries = GaugeMetricFamily(
        "rollcall_deliveries", "Notice deliveries by state.", labels=["state"]
    )
    for state in Delivery.State.values:
        deliveries.add_metric([state], by_state.get(state, 0))
    yield deliveries
    yield GaugeMetricFamily(
        "rollcall_deliveries_pending",
        "Deliveries not finished yet (pending, queued, sending, retrying).",
        value=sum(by_state.get(s, 0) for s in Delivery.UNFINISHED_STATES),
    )
    yield GaugeMetricFamily(
        "rollcall_deliveries_failed", "Deliveries that gave up.",
        value=by_state.get(Delivery.State.FAILED, 0),
    )  # fmt: skip
    stale = timezone.now() - timedelta(seconds=settings.COMMS_DELIVERY_STALE_SECONDS)
    yield GaugeMetricFamily(
        "rollcall_deliveries_dead",
        "Deliveries whose worker vanished while sending (the sweep sends them again).",
        value=Delivery.objects.filter(state=Delivery.State.SENDING, updated_at__lt=stale).count(),
    )
