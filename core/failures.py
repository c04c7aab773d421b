"""Failed work across the apps: one list of stuck and dead items, with Retry and Discard.

Each app that batches work (comms' events and deliveries, rollouts' scheduler steps) records
an item that fails with its error and attempt count; the item backs off and, after its retry
budget, lands in a dead-letter state. The app registers a `FailureSource` in its
`AppConfig.ready()`; the core Failures page and dashboard panel render whatever the sources
return, so core stays at the bottom of the import graph:

    from core.failures import register_source
    register_source(MySource())

A source's `retry` and `discard` are services of its app (they lock and check the item);
`failure_discard` here records who discarded what and why (`DiscardedFailure`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction

from core.exceptions import ApplicationError
from core.models import DiscardedFailure

logger = logging.getLogger(__name__)

STUCK = "stuck"  # failed, will be tried again (backing off)
DEAD = "dead"  # out of retries: waits for a person (Retry or Discard)


MAX_BACKOFF = timedelta(hours=1)


def retry_budget() -> int:
    """Attempts an item gets before it is dead (ROLLCALL_RETRY_MAX_ATTEMPTS, at least 1)."""
    return max(1, int(getattr(settings, "ROLLCALL_RETRY_MAX_ATTEMPTS", 3)))


def retry_delay(attempts: int) -> timedelta:
    """The pause after the `attempts`-th failure: the base, doubled each time, capped."""
    base = max(1, int(getattr(settings, "ROLLCALL_RETRY_BACKOFF_SECONDS", 30)))
    return min(MAX_BACKOFF, timedelta(seconds=base * 2 ** max(attempts - 1, 0)))


def describe_error(exc: BaseException) -> str:
    """An exception in words: a domain error's own message, else its type and text."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


@dataclass(frozen=True)
class FailureItem:
    source: str
    key: str
    kind: str  # what it is, in words: "Rollout event", "Delivery", "Scheduled phase"
    title: str
    state: str  # STUCK or DEAD
    error: str  # what went wrong, in plain words
    attempts: int
    failed_at: datetime | None
    next_attempt_at: datetime | None = None
    url: str = ""  # where to look at the item


class FailureSource(Protocol):
    name: str

    def items(self, *, limit: int) -> list[FailureItem]: ...

    def retry(self, *, key: str, actor: AbstractBaseUser) -> str: ...

    def discard(self, *, key: str, actor: AbstractBaseUser, reason: str) -> FailureItem: ...


_SOURCES: dict[str, FailureSource] = {}


def register_source(source: FailureSource) -> None:
    _SOURCES[source.name] = source


def sources() -> list[FailureSource]:
    return list(_SOURCES.values())


def _source(name: str) -> FailureSource:
    try:
        return _SOURCES[name]
    except KeyError:
        raise ApplicationError("That kind of item is unknown here.", field="source") from None


def failures_list(*, limit: int = 200) -> list[FailureItem]:
    """Dead items first (they wait for a person), then stuck ones; newest failure first."""
    found: list[FailureItem] = []
    for source in sources():
        found.extend(source.items(limit=limit))
    found.sort(key=lambda i: (i.state != DEAD, -(i.failed_at.timestamp() if i.failed_at else 0)))
    return found[:limit]


def failure_retry(*, source: str, key: str, actor: AbstractBaseUser) -> str:
    """Try a failed item again now; returns what happened, in words."""
    message = _source(source).retry(key=key, actor=actor)
    logger.info("failure.retried source=%s key=%s actor=%s", source, key, actor.pk)
    return message


def failure_discard(*, source: str, key: str, actor: User, reason: str) -> DiscardedFailure:
    """Give up on a failed item for good, saying why (kept on the Failures page)."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why this item is discarded.", field="reason")
    with transaction.atomic():
        item = _source(source).discard(key=key, actor=actor, reason=reason)
        record = DiscardedFailure.objects.create(
            source=source,
            key=key,
            title=f"{item.kind}: {item.title}"[:300],
            error=item.error,
            reason=reason[:2000],
            discarded_by=actor,
        )
    logger.info("failure.discarded source=%s key=%s actor=%s", source, key, actor.pk)
    return record


def failures_discarded(*, limit: int = 20) -> list[DiscardedFailure]:
    return list(DiscardedFailure.objects.select_related("discarded_by")[:limit])
