from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def on_events_committed(sender: Any, event_ids: list[int], **kwargs: Any) -> None:
    """Fast path: rollouts fire `events_committed` after the commit; hand the ids to a worker.
    If the broker is unreachable the beat sweep picks the events up (nothing is lost)."""
    from comms.tasks import dispatch_events

    try:
        dispatch_events.delay(list(event_ids))
    except Exception:  # noqa: BLE001 - the sweep is the durable path
        logger.warning("event.enqueue_failed event_ids=%s (the sweep handles them)", event_ids)


def notices_panel(request: Any) -> tuple[str, dict[str, Any]] | None:
    """Dashboard panel "Recent and upcoming notices"."""
    if not request.user.has_perm("comms.view_notice"):
        return None
    from django.utils import timezone

    from comms.selectors import dashboard_notices

    return "comms/_dashboard_panel.html", {"comms_panel": dashboard_notices(now=timezone.now())}


def rollout_notices_section(request: Any, *, rollout: Any) -> tuple[str, dict[str, Any]] | None:
    """On the rollout page: its communication plan as a timeline of notices."""
    if not request.user.has_perm("comms.view_notice"):
        return None
    from django.utils import timezone

    from comms.selectors import planned_notices

    return "comms/_rollout_section.html", {
        "rollout": rollout,
        "planned": planned_notices(rollout, timezone.now()),
    }


def rollout_start_warnings(*, rollout: Any, now: Any) -> list[dict[str, Any]]:
    """Before a draft starts: the lead-time notices that starting now would miss."""
    from comms.selectors import start_warnings

    return start_warnings(rollout=rollout, now=now)


class CommsConfig(AppConfig):
    name = "comms"
    verbose_name = "Communication"

    def ready(self) -> None:
        # Register the tasks in every process (web too): services enqueue them by name, and
        # Celery applies a registered task's own options to what it sends.
        import comms.tasks  # noqa: F401
        from comms.failures import DeliveryFailures, EventFailures
        from core.dashboard import register_check, register_panel, register_section
        from core.failures import register_source
        from rollouts.services import events_committed

        register_panel(notices_panel)
        register_source(EventFailures())
        register_source(DeliveryFailures())
        register_section("rollout_detail", rollout_notices_section)
        register_check("rollout_start", rollout_start_warnings)
        from comms import metrics
        from core.metrics import register_collector

        register_collector(metrics.collect)
        events_committed.connect(on_events_committed, dispatch_uid="comms.events_committed")
