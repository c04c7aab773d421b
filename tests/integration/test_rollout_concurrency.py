"""Races on PostgreSQL: several workers, duplicate messages and sweeps from several threads.

50 scheduled rollouts with soak-free phases are due at once, so every sweep finds work for
each of them at every step. Two worker processes (two children each) run the fanned-out
`rollouts.advance` messages, which three threads of this process also send twice each per
step (as after redeliveries) while running the fan-out sweep over and over; one of them also
runs the inline sweep now and then. Whatever interleaving happens, each phase of
each rollout is applied exactly once and none is skipped.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from flags.models import FlagState
from rollouts import services, tasks
from rollouts.models import Phase, Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, phase

ROLLOUTS = 50
PERCENTAGES = (10, 20, 30, 100)
THREADS = 3


def test_scheduler__workers_and_sweeps_race__each_phase_applied_exactly_once(
    celery_processes, wait_for
):
    env = EnvironmentFactory(key="production", name="Production")
    start_at = timezone.now() + timedelta(hours=1)
    rollouts = []
    for _ in range(ROLLOUTS):
        plan = [phase(f"{p}%", p) for p in PERCENTAGES]
        plan[0].update(start_rule="at", start_at=start_at)
        rollout = make_rollout(environment=env, release=ReleaseFactory(), phases=plan)
        services.rollout_schedule(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)
        rollouts.append(rollout)
    ids = [r.id for r in rollouts]
    # Creating them took a while on a busy machine: make all of them due at the same moment.
    start_at = timezone.now() + timedelta(seconds=2)
    Phase.objects.filter(rollout_id__in=ids, order=0).update(start_at=start_at)
    Rollout.objects.filter(id__in=ids).update(next_due_at=start_at)

    celery_processes.worker(concurrency=2, name="w1")
    celery_processes.worker(concurrency=2, name="w2")
    stop = threading.Event()
    errors: list[BaseException] = []

    def race(inline: bool) -> None:
        sent: set[tuple[int, int]] = set()
        loops = 0
        try:
            while not stop.is_set():
                for step in services.rollouts_due():
                    if step not in sent:  # duplicates of every step, as after redeliveries
                        sent.add(step)
                        tasks.advance.delay(*step)
                        tasks.advance.delay(*step)
                tasks.sweep()
                loops += 1
                if inline and loops % 10 == 0:
                    services.rollouts_advance_due()
                time.sleep(0.02)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    while timezone.now() < start_at:
        time.sleep(0.05)
    threads = [threading.Thread(target=race, args=(i == 0,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: (
                not Rollout.objects.filter(id__in=ids)
                .exclude(state=Rollout.State.COMPLETED)
                .exists()
            ),
            timeout=120,
            what="all rollouts to complete",
            logs=celery_processes,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    time.sleep(2)  # let queued duplicates drain: they must all be no-ops

    steps = Counter(
        RolloutEvent.objects.filter(rollout_id__in=ids, kind="advanced").values_list(
            "rollout_id", "to_phase_index"
        )
    )
    expected = {(rid, index): 1 for rid in ids for index in range(len(PERCENTAGES))}
    assert dict(steps) == expected
    for kind in ("started", "completed"):
        per_rollout = Counter(
            RolloutEvent.objects.filter(rollout_id__in=ids, kind=kind).values_list(
                "rollout_id", flat=True
            )
        )
        assert per_rollout == dict.fromkeys(ids, 1), kind

    # Each flag saw every planned exposure once, in order.
    for rollout in Rollout.objects.filter(id__in=ids).select_related("flag"):
        history = FlagState.history.filter(flag_id=rollout.flag_id, environment_id=env.id)
        applied = [
            h.rules[0]["parameters"]["rollout"]
            for h in history.order_by("history_date", "history_id")
            if h.rules
        ]
        assert applied == [str(p) for p in PERCENTAGES], rollout.key

    # The workers took part (the inline sweep of one thread raced them).
    worker_steps = sum(
        log.read_text().count("rollout.advanced") for _, log in celery_processes.procs
    )
    assert worker_steps > 0, celery_processes.logs()
