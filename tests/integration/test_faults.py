"""Reliability under faults, with real workers (prefork, as shipped), beat, Redis, PostgreSQL:

- a poison event among 100 good ones: the 100 notices arrive exactly once, the poison ends in
  the dead-letter list (visible on the Failures page), and Retry works once the cause is fixed;
- one failing rollout in a batch of 20 due: 19 advance in the same tick, the failing one is held
  with its reason;
- a send that hangs is cut off by its time limit and retried with the same delivery id, which
  the receiver processes once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from comms import services
from comms.channels import DELIVERY_HEADER
from comms.models import (
    Audience,
    Channel,
    Delivery,
    EventFailure,
    Notice,
    NoticeEvent,
    NoticeTemplate,
    PlanRule,
)
from core.schedules import ensure_periodic_task
from rollouts import services as rollout_services
from rollouts import tasks as rollout_tasks
from rollouts.models import Hold, Rollout, RolloutEvent
from tests.comms.receivers import WebhookReceiver
from tests.conftest import clear_own_cache
from tests.rollouts.factories import EnvironmentFactory, make_rollout, phase, soak_plan

UI = RolloutEvent.Source.UI
GOOD = 100
MIN = timedelta(minutes=1)


def start_worker(procs, name: str, env: dict[str, str]):
    return procs.start(
        name, "worker", "--loglevel=INFO", "--pool=prefork", "--concurrency=2",
        "--without-mingle", "--without-gossip", f"--hostname={name}-{time.time_ns()}@%h",
        extra_env=env,
    )  # fmt: skip


def start_beat(procs, env: dict[str, str]):
    return procs.start(
        "beat", "beat", "--loglevel=INFO",
        "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
        f"--pidfile={procs.tmp_path / 'beat.pid'}", "--max-interval=1", extra_env=env,
    )  # fmt: skip


@pytest.fixture
def receiver():
    r = WebhookReceiver().start()
    yield r
    r.stop()


def test_poison_event_among_100__100_delivered_once_poison_dead_visible_retry_after_fix(
    celery_processes, wait_for, receiver, client, make_user
):
    clear_own_cache()
    for name, task in (
        ("Notices: rollout events sweep", "comms.sweep_events"),
        ("Notices: due notices and stuck deliveries sweep", "comms.sweep_notices"),
    ):
        ensure_periodic_task(apps, name=name, task=task, every_seconds=1)
    beta = services.audience_create(name="Beta", kind=Audience.Kind.BETA_TESTERS, actor=None)
    channel = services.channel_create(
        audience=beta, kind=Channel.Kind.WEBHOOK, name="Beta hook", url=f"{receiver.url}/beta",
        actor=None,
    )  # fmt: skip
    receiver.secrets["/beta"] = channel.signing_secret
    env = EnvironmentFactory()
    plan = [phase("10%", 10), phase("100%", 100, soak=timedelta(hours=1))]
    start = timezone.now()

    # The poison first, so it is the oldest event: a template saved without validation.
    poison = make_rollout(environment=env, phases=plan)
    broken = NoticeTemplate.objects.create(
        name="Broken", event=NoticeEvent.PHASE_STARTED, subject="{{ rollout.nonsense }}", body="x"
    )
    PlanRule.objects.filter(plan=services.plan_ensure(rollout=poison)).update(template=broken)
    rollout_services.rollout_start(rollout=poison, actor=None, source=UI, now=start)
    for _ in range(GOOD):
        good = make_rollout(environment=env, phases=plan)
        rollout_services.rollout_start(rollout=good, actor=None, source=UI, now=start)
    poison_event = poison.events.get(kind=RolloutEvent.Kind.ADVANCED)

    worker_env = {"ROLLCALL_RETRY_MAX_ATTEMPTS": "2", "ROLLCALL_RETRY_BACKOFF_SECONDS": "1"}
    start_worker(celery_processes, "poison", worker_env)
    start_beat(celery_processes, worker_env)

    wait_for(
        lambda: len(receiver.processed) == GOOD,
        timeout=240, what=f"{GOOD} notices delivered", logs=celery_processes,
    )  # fmt: skip
    failure = wait_for(
        lambda: EventFailure.objects.filter(event=poison_event, dead_at__isnull=False).first(),
        timeout=60, what="the poison event in the dead-letter state", logs=celery_processes,
    )  # fmt: skip
    assert failure.attempts == 2
    assert "nonsense" in failure.last_error
    assert set(receiver.processed.values()) == {1}
    assert sum(receiver.ids().values()) == GOOD  # no copy at all: nothing failed but the poison
    assert Delivery.objects.filter(state="sent").count() == GOOD

    admin = make_user("ada", "Admins")
    client.force_login(admin)
    page = client.get(reverse("failures")).content.decode()
    assert f"Phase started of rollout {poison.key}" in page
    assert "Dead" in page

    NoticeTemplate.objects.filter(pk=broken.pk).update(subject="{{ rollout.key }} started")
    response = client.post(reverse("failure-retry", args=["comms-event", poison_event.id]))
    assert response.status_code == 302

    wait_for(
        lambda: len(receiver.processed) == GOOD + 1,
        timeout=60, what="the retried event's notice delivered", logs=celery_processes,
    )  # fmt: skip
    wait_for(
        lambda: Notice.objects.filter(rollout_event=poison_event, state="sent").exists(),
        timeout=30, what="the retried event's notice finished", logs=celery_processes,
    )  # fmt: skip
    assert not EventFailure.objects.exists()
    assert set(receiver.processed.values()) == {1}
    print(f"\npoison: {GOOD} good notices delivered once each; poison dead after 2 attempts")


def test_failing_rollout_in_batch_of_20__19_advance_same_tick_failing_one_held_with_reason(
    celery_processes, wait_for
):
    clear_own_cache()
    env = EnvironmentFactory()
    past = timezone.now() - 30 * MIN
    rollouts = []
    for _ in range(20):
        rollout = make_rollout(environment=env, phases=soak_plan(10, 50, 100, soak=10 * MIN))
        rollouts.append(
            rollout_services.rollout_start(rollout=rollout, actor=None, source=UI, now=past)
        )
    failing = rollouts[0]  # the oldest due: first in its batch
    Rollout.objects.filter(pk=failing.pk).update(strategy="retired-strategy")
    start_worker(celery_processes, "batch", {"ROLLCALL_RETRY_MAX_ATTEMPTS": "1"})

    enqueued = rollout_tasks.sweep()  # one tick

    assert enqueued == 20
    wait_for(
        lambda: Rollout.objects.filter(current_phase_index=1).count() == 19,
        timeout=90, what="19 rollouts to advance", logs=celery_processes,
    )  # fmt: skip
    hold = wait_for(
        lambda: Hold.objects.filter(rollout=failing, cleared_at__isnull=True).first(),
        timeout=30, what="the failing rollout to be held", logs=celery_processes,
    )  # fmt: skip
    failing.refresh_from_db()
    assert failing.state == Rollout.State.HELD
    assert failing.current_phase_index == 0
    assert hold.kind == Hold.Kind.FAILING
    assert "Unknown strategy 'retired-strategy'" in hold.reason
    assert rollout_services.rollouts_due() == []  # nothing left due: the held one waits


class HangOnceReceiver:
    """Answers the first request of each delivery id by dribbling a byte a second (never long
    enough silent for the client's read timeout), later copies at once. Records arrivals and
    which answers completed."""

    def __init__(self) -> None:
        self.arrivals: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                delivery_id = self.headers.get(DELIVERY_HEADER, "")
                with receiver.lock:
                    receiver.arrivals[delivery_id] += 1
                    first = receiver.arrivals[delivery_id] == 1
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if not first else 120))
                self.end_headers()
                if first:
                    try:
                        for _ in range(120):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(1)
                    except OSError:
                        pass  # the sender hung up
                    return
                self.wfile.write(body)
                with receiver.lock:
                    receiver.completed[delivery_id] += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_hanging_send__cut_off_by_time_limit__retried_same_delivery_id_processed_once(
    celery_processes, wait_for
):
    clear_own_cache()
    receiver = HangOnceReceiver()
    try:
        audience = services.audience_create(name="Ops", kind=Audience.Kind.CUSTOM, actor=None)
        services.channel_create(
            audience=audience, kind=Channel.Kind.WEBHOOK, name="Ops hook",
            url=f"{receiver.url}/ops", actor=None,
        )  # fmt: skip
        start_worker(
            celery_processes, "hang",
            {"COMMS_SEND_SOFT_TIME_LIMIT": "3", "COMMS_SEND_TIME_LIMIT": "6"},
        )  # fmt: skip
        services.notice_create(
            audience=audience, subject="Maintenance", body="Tonight.", actor=None, send_now=True
        )
        delivery = Delivery.objects.get()

        wait_for(
            lambda: Delivery.objects.filter(pk=delivery.pk, state="sent").exists(),
            timeout=90, what="the delivery sent after the cut-off", logs=celery_processes,
        )  # fmt: skip
        delivery.refresh_from_db()
        key = str(delivery.idempotency_key)
        assert delivery.attempts == 2
        assert "took longer than 3 seconds and was cut off" in delivery.last_error
        assert receiver.arrivals == Counter({key: 2})  # the same delivery id both times
        assert receiver.completed == Counter({key: 1})  # processed once
    finally:
        receiver.stop()
