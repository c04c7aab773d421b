"""Rollcall's own `/metrics` for Prometheus (prometheus-client text format).

Each app contributes a collector in its `AppConfig.ready()` (core stays at the bottom of the
import graph):

    from core.metrics import register_collector
    register_collector(my_collector)   # my_collector() -> Iterable[Metric]

The endpoint answers a request that carries `Authorization: Bearer <ROLLCALL_METRICS_TOKEN>`
or comes from `ROLLCALL_METRICS_ALLOWED_NETWORKS` (default: loopback only); others get 403.
Values are read from the database at scrape time (a few aggregate queries).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)

Collector = Callable[[], Iterable[Metric]]
_COLLECTORS: list[Collector] = []


def register_collector(collector: Collector) -> None:
    if collector not in _COLLECTORS:
        _COLLECTORS.append(collector)


class _Rollcall:
    def collect(self) -> Iterable[Metric]:
        for collector in list(_COLLECTORS):
            try:
                yield from collector()
            except Exception:
                logger.exception("metrics.collector_failed collector=%s", collector.__name__)
                failed = GaugeMetricFamily(
                    "rollcall_metrics_collector_failed", "A collector failed", labels=["name"]
                )
                failed.add_metric([collector.__name__], 1)
                yield failed


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Rollcall())
    return generate_latest(registry)


def allowed(request: HttpRequest) -> bool:
    token = str(getattr(settings, "ROLLCALL_METRICS_TOKEN", "") or "")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if (
        token
        and header.startswith("Bearer ")
        and hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode())
    ):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = getattr(settings, "ROLLCALL_METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse(
            "Metrics need `Authorization: Bearer <ROLLCALL_METRICS_TOKEN>` or a client in "
            "ROLLCALL_METRICS_ALLOWED_NETWORKS.\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
