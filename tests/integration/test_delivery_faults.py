"""Deliveries survive a worker killed mid-send (SIGKILL), and none is delivered twice.

How "twice" is decided: a delivery is sent with its idempotency id (X-Rollcall-Delivery).
The receiver processes the first copy of an id and acknowledges later copies without
processing them (what the README asks receivers to do). A second copy is a defect if the
sender had already seen the first one acknowledged (the delivery was "sent" when the worker
died) - that never happens here. A second copy of an attempt that was interrupted (the
delivery was "sending" when the worker died, so the sender cannot know whether it arrived) is
at-least-once delivery working as designed: allowed only for those deliveries, and each of
them then shows 2 attempts. So: every id is processed exactly once; raw duplicates exist only
for ids in flight at the kill.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.apps import apps

from comms import services
from comms.models import Audience, Channel, Delivery, Notice
from core.schedules import ensure_periodic_task
from tests.comms.receivers import WebhookReceiver
from tests.conftest import clear_own_cache

CHANNELS = 10
NOTICES = 4
ENV = {"COMMS_DELIVERY_STALE_SECONDS": "4", "COMMS_DELIVERY_REQUEUE_SECONDS": "4"}


@pytest.fixture
def slow_receiver():
    receiver = WebhookReceiver(delay=0.4).start()
    yield receiver
    receiver.stop()


def worker(procs, name: str):
    return procs.start(
        name, "worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle",
        "--without-gossip", f"--hostname={name}-{time.time_ns()}@%h", extra_env=ENV,
    )  # fmt: skip


def test_worker_killed_mid_send__every_delivery_arrives__none_processed_twice(
    celery_processes, wait_for, slow_receiver
):
    clear_own_cache()
    ensure_periodic_task(
        apps, name="Notices: due notices and stuck deliveries sweep", task="comms.sweep_notices",
        every_seconds=1,
    )  # fmt: skip
    audience = services.audience_create(name="Partners", kind=Audience.Kind.CUSTOM, actor=None)
    for i in range(CHANNELS):
        channel = services.channel_create(
            audience=audience, kind=Channel.Kind.WEBHOOK, name=f"Partner {i}",
            url=f"{slow_receiver.url}/p{i}", actor=None,
        )  # fmt: skip
        slow_receiver.secrets[f"/p{i}"] = channel.signing_secret
    first = worker(celery_processes, "doomed")
    celery_processes.start(
        "beat", "beat", "--loglevel=INFO",
        "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
        f"--pidfile={celery_processes.tmp_path / 'beat.pid'}", "--max-interval=1", extra_env=ENV,
    )  # fmt: skip
    for n in range(NOTICES):
        services.notice_create(
            audience=audience, subject=f"Update {n}", body="**Partners**: news.", actor=None,
            send_now=True,
        )  # fmt: skip
    total = CHANNELS * NOTICES
    assert Delivery.objects.count() == total

    wait_for(
        lambda: Delivery.objects.filter(state="sent").count() >= 6 and slow_receiver.in_flight,
        timeout=60, what="some deliveries sent and one in flight", logs=celery_processes,
    )  # fmt: skip
    celery_processes.kill(first, signal.SIGKILL)
    at_kill = dict(Delivery.objects.values_list("idempotency_key", "state"))
    sent_at_kill = {str(k) for k, state in at_kill.items() if state == "sent"}
    in_flight_at_kill = {str(k) for k, state in at_kill.items() if state == "sending"}
    assert len(sent_at_kill) < total, "the worker finished before it was killed"

    worker(celery_processes, "survivor")
    wait_for(
        lambda: Delivery.objects.filter(state="sent").count() == total,
        timeout=120, what="every delivery to be sent after the restart", logs=celery_processes,
    )  # fmt: skip
    wait_for(
        lambda: not Notice.objects.exclude(state="sent").exists(),
        timeout=30, what="every notice to be finished", logs=celery_processes,
    )  # fmt: skip
    time.sleep(2)  # any late copy would arrive now

    ids = {str(k) for k in Delivery.objects.values_list("idempotency_key", flat=True)}
    arrivals = slow_receiver.ids()
    duplicates = {i for i, n in arrivals.items() if n > 1}
    assert slow_receiver.bad_signatures == []
    assert set(slow_receiver.processed) == ids  # every delivery arrived ...
    assert set(slow_receiver.processed.values()) == {1}  # ... and was processed once
    assert not duplicates & sent_at_kill  # nothing acknowledged was sent again
    assert duplicates <= in_flight_at_kill  # copies only of interrupted attempts
    attempts = dict(Delivery.objects.values_list("idempotency_key", "attempts"))
    assert all(attempts[k] == 1 for k in attempts if str(k) not in in_flight_at_kill)
    assert all(
        attempts[k] == 2 for k in attempts if str(k) in in_flight_at_kill and str(k) in duplicates
    )
    print(
        f"\nfault: {total} deliveries, killed with {len(sent_at_kill)} sent and "
        f"{len(in_flight_at_kill)} in flight; raw duplicate arrivals {len(duplicates)} "
        f"(de-duplicated by id), processed twice 0"
    )
