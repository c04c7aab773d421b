"""Celery tasks of the rollout scheduler: thin, ids in, idempotent.

Beat runs `rollouts.sweep` every tick (stored in the database by a data migration). The sweep
finds the due rollouts in one query and fans them out in small batches (`rollouts.advance_many`),
so several worker processes advance rollouts in parallel. `rollout_advance` locks each row with
SKIP LOCKED and checks the expected phase, so a duplicate message, a retry or an overlapping
sweep never advances a phase twice. No countdown/eta messages: the next sweep finds whatever
is due next.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from core.services import heartbeat_record
from rollouts.services import rollouts_advance_steps, rollouts_due
from rollouts.services.checks import checks_evaluate

logger = logging.getLogger(__name__)

SWEEP_HEARTBEAT = "rollouts.sweep"
# Steps per message: large enough that a tick of 1,000 due rollouts is ~50 messages, small
# enough that two workers share the work evenly.
BATCH = 20


def requeue_guard_seconds() -> int:
    """How long a queued step is not queued again: just under one tick, so the very next
    sweep re-queues a step whose message died with its worker (a late step costs one tick,
    not a fixed minute). A duplicate message is harmless (row lock + phase guard)."""
    tick = int(getattr(settings, "ROLLCALL_TICK_SECONDS", 30))
    return max(1, tick - 1)


def _queued_key(rollout_id: int, expected_phase_index: int) -> str:
    return f"rollouts:advance-queued:{rollout_id}:{expected_phase_index}"


@shared_task(name="rollouts.sweep", ignore_result=True)
def sweep(limit: int | None = None) -> int:
    """Enqueue the due steps in batches (after commit); returns how many steps were enqueued."""
    heartbeat_record(name=SWEEP_HEARTBEAT)
    checks_evaluate()  # guarded phases: evaluate their metric checks before the due query
    steps = rollouts_due(limit=limit)
    if not steps:
        return 0
    # A message for a step may still be waiting (a backlog, an overlapping sweep): don't pile
    # up duplicates. Correctness never depends on this (the row lock and phase guard do), so
    # a racy read-then-write is fine here.
    keys = {step: _queued_key(*step) for step in steps}
    queued = set(cache.get_many(list(keys.values())))
    fresh = [step for step in steps if keys[step] not in queued]
    cache.set_many({keys[step]: 1 for step in fresh}, timeout=requeue_guard_seconds())
    for start in range(0, len(fresh), BATCH):
        batch = [list(step) for step in fresh[start : start + BATCH]]
        # celery-types has no stub for Task.delay_on_commit (Celery 5.4).
        advance_many.delay_on_commit(batch)  # type: ignore[attr-defined]
    logger.info("rollouts.swept due=%d enqueued=%d", len(steps), len(fresh))
    return len(fresh)


@shared_task(name="rollouts.advance_many", ignore_result=True, acks_late=True)
def advance_many(steps: Sequence[Sequence[int]]) -> int:
    """Advance each [rollout id, expected phase index] that is still due; returns how many."""
    try:
        return rollouts_advance_steps(steps=steps)
    finally:
        cache.delete_many([_queued_key(int(r), int(i)) for r, i in steps])


@shared_task(name="rollouts.advance", ignore_result=True, acks_late=True)
def advance(rollout_id: int, expected_phase_index: int) -> bool:
    """Advance one rollout if it is still due and still at that phase."""
    return advance_many([[rollout_id, expected_phase_index]]) == 1
