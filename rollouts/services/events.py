"""The event log of rollouts: `_record` writes a `RolloutEvent`; `events_committed` tells
consumers (notices) about the events a transaction wrote, once it committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.dispatch import Signal

from rollouts.models import Rollout, RolloutEvent
from rollouts.services.common import _user

logger = logging.getLogger(__name__)


# Sent on commit with the ids of the events a transaction wrote, so that consumers (notices)
# react at once; they also sweep undispatched events, so nothing is lost if a receiver fails.
events_committed = Signal()


def _record(
    rollout: Rollout,
    *,
    kind: str,
    source: str,
    actor: AbstractBaseUser | None,
    at: datetime,
    reason: str = "",
    due_at: datetime | None = None,
    from_phase: int | None = None,
    to_phase: int | None = None,
    from_percentage: int | None = None,
    to_percentage: int | None = None,
    data: dict[str, Any] | None = None,
) -> RolloutEvent:
    event = RolloutEvent.objects.create(
        rollout=rollout,
        kind=kind,
        source=source,
        actor=_user(actor),
        at=at,
        due_at=due_at,
        from_phase_index=from_phase,
        to_phase_index=to_phase,
        from_percentage=from_percentage,
        to_percentage=to_percentage,
        reason=reason or "",
        data=data or {},
    )
    event_id = event.id
    transaction.on_commit(lambda: _committed(event_id), robust=True)
    return event


_batch = threading.local()


def _committed(event_id: int) -> None:
    ids = getattr(_batch, "ids", None)
    if ids is not None:
        ids.append(event_id)
        return
    events_committed.send(sender=RolloutEvent, event_ids=[event_id])


@contextmanager
def events_batched() -> Iterator[None]:
    """Send `events_committed` once for all events committed inside the block.

    The scheduler advances many rollouts, each in its own transaction; consumers then get one
    signal (one message) per batch instead of one per event.
    """
    if getattr(_batch, "ids", None) is not None:
        yield  # nested: the outer block sends
        return
    _batch.ids = []
    try:
        yield
    finally:
        ids, _batch.ids = _batch.ids, None
        if ids:
            for receiver, result in events_committed.send_robust(
                sender=RolloutEvent, event_ids=ids
            ):
                if isinstance(result, Exception):
                    logger.warning(
                        "rollout.events_signal_failed receiver=%s error=%s", receiver, result
                    )
