"""Notices end to end: a rollout run by real Celery (beat + worker) produces exactly the
notices its communication plan says, at the right times, to real receivers.

Receivers: a local HTTP server (verifies X-Rollcall-Signature with the channel's secret and
de-duplicates by X-Rollcall-Delivery) and an aiosmtpd SMTP server. The rollout advances on
its own through `rollouts.sweep`; events reach comms through the fast path (the
`events_committed` signal) and the sweep.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.apps import apps

from comms import services
from comms.models import Audience, Channel, Delivery, Notice, PlanRule
from core.schedules import ensure_periodic_task
from rollouts import services as rollout_services
from rollouts.models import Phase, RolloutEvent
from tests.comms.receivers import SmtpReceiver, WebhookReceiver
from tests.conftest import clear_own_cache
from tests.integration.conftest import Processes
from tests.rollouts.factories import EnvironmentFactory, ReleaseFactory, make_rollout, phase

SOAK = timedelta(seconds=6)
LEAD = timedelta(seconds=3)
TICK = 1


@pytest.fixture
def webhook():
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp():
    receiver = SmtpReceiver().start()
    yield receiver
    receiver.stop()


def schedules() -> None:
    for name, task in (
        ("Rollout scheduler sweep", "rollouts.sweep"),
        ("Notices: rollout events sweep", "comms.sweep_events"),
        ("Notices: due notices and stuck deliveries sweep", "comms.sweep_notices"),
    ):
        ensure_periodic_task(apps, name=name, task=task, every_seconds=TICK)


def start_processes(procs: Processes, smtp: SmtpReceiver) -> None:
    env = {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "ROLLCALL_TICK_SECONDS": str(TICK),
    }
    procs.start(
        "worker", "worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle",
        "--without-gossip", f"--hostname=notices-{time.time_ns()}@%h", extra_env=env,
    )  # fmt: skip
    procs.start(
        "beat", "beat", "--loglevel=INFO",
        "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
        f"--pidfile={procs.tmp_path / 'beat.pid'}", "--max-interval=1", extra_env=env,
    )  # fmt: skip


def test_rollout_run_by_celery__plan_notices_arrive_exactly_once_on_time_signed(
    celery_processes, wait_for, webhook, smtp
):
    clear_own_cache()
    schedules()
    support = services.audience_create(
        name="Customer support", kind=Audience.Kind.CUSTOMER_SUPPORT, timezone="Europe/Berlin",
        actor=None,
    )  # fmt: skip
    customers = services.audience_create(
        name="Customers", kind=Audience.Kind.CUSTOMERS,
        contacts="Ann <ann@example.com>\nbob@example.com", actor=None,
    )  # fmt: skip
    tech = services.audience_create(
        name="Technical support", kind=Audience.Kind.TECHNICAL_SUPPORT, actor=None
    )
    hook = services.channel_create(
        audience=support, kind=Channel.Kind.WEBHOOK, name="Support desk",
        url=webhook.url + "/support", actor=None,
    )  # fmt: skip
    webhook.secrets["/support"] = hook.signing_secret
    services.channel_create(
        audience=tech, kind=Channel.Kind.TEAMS, name="Ops room", url=webhook.url + "/teams",
        actor=None,
    )  # fmt: skip
    services.channel_create(audience=customers, kind=Channel.Kind.EMAIL, name="News", actor=None)
    rollout = make_rollout(
        environment=EnvironmentFactory(key="production", name="Production"),
        release=ReleaseFactory(name="Faster checkout", version="2.4"),
        phases=[phase(f"{p}%", p, soak=SOAK if i else None) for i, p in enumerate((10, 50, 100))],
    )
    services.plan_rules_replace(
        rollout=rollout,
        rules=[
            {"audience": support, "event": "phase_upcoming", "lead_time": LEAD, "phases": "all"},
            {"audience": support, "event": "phase_started", "phases": "all"},
            {"audience": customers, "event": "phase_started", "phases": "full"},
            {"audience": tech, "event": "completed"},
        ],
        actor=None,
    )
    start_processes(celery_processes, smtp)
    time.sleep(1.5)  # beat reads its schedule

    rollout_services.rollout_start(rollout=rollout, actor=None, source=RolloutEvent.Source.UI)
    wait_for(
        lambda: Notice.objects.filter(rollout=rollout, event="completed", state="sent").exists(),
        timeout=60, what="the rollout to complete and its notices to be sent",
        logs=celery_processes,
    )  # fmt: skip
    wait_for(
        lambda: not Notice.objects.filter(rollout=rollout, state__in=("scheduled", "sending"))
        .exists(),
        timeout=30, what="every notice to finish", logs=celery_processes,
    )  # fmt: skip
    time.sleep(1)  # a late duplicate would have arrived by now

    # Exactly the notices the plan says: support hears "starting soon" for phases 2 and 3 and
    # every phase start; customers only at 100%; technical support when it completes.
    got = Counter(
        (n.audience.name, n.event, n.phase.order if n.phase else None)
        for n in Notice.objects.filter(rollout=rollout).select_related("audience", "phase")
    )
    assert got == Counter(
        {
            ("Customer support", "phase_upcoming", 1): 1,
            ("Customer support", "phase_upcoming", 2): 1,
            ("Customer support", "phase_started", 0): 1,
            ("Customer support", "phase_started", 1): 1,
            ("Customer support", "phase_started", 2): 1,
            ("Customers", "phase_started", 2): 1,
            ("Technical support", "completed", 2): 1,
        }
    ), got
    assert set(Notice.objects.filter(rollout=rollout).values_list("state", flat=True)) == {"sent"}

    # Every delivery arrived once, signed correctly.
    deliveries = {
        str(d.idempotency_key): d for d in Delivery.objects.filter(notice__rollout=rollout)
    }
    http_ids = {k for k, d in deliveries.items() if d.channel_kind != "email"}
    assert webhook.bad_signatures == []
    assert set(webhook.processed) == http_ids
    assert set(webhook.ids().values()) == {1}
    mail_ids = [m["X-Rollcall-Delivery"] for m in smtp.messages]
    assert sorted(mail_ids) == sorted(k for k, d in deliveries.items() if d.channel_kind == "email")
    assert {m["To"] for m in smtp.messages} == {"ann@example.com", "bob@example.com"}
    email = smtp.messages[0]
    assert email["Message-ID"] == f"<{email['X-Rollcall-Delivery']}@rollcall>"
    assert email.get_body(("html",)) is not None and email.get_body(("plain",)) is not None
    assert "Faster checkout" in email["Subject"]

    # On time: "starting soon" arrives lead-time before its phase (before the phase is
    # applied); phase notices arrive after their phase started.
    phases = {p.order: p for p in Phase.objects.filter(rollout=rollout)}
    arrivals = {a.headers["X-Rollcall-Delivery"]: a for a in webhook.arrivals}
    for key, delivery in deliveries.items():
        notice = delivery.notice
        if delivery.channel_kind == "email":
            continue
        arrived = arrivals[key].at
        if notice.event == "phase_upcoming":
            start = phases[notice.phase.order].applied_at.timestamp()
            # Slack of two ticks: the phase itself may apply up to a tick late.
            assert start - LEAD.total_seconds() - 2 * TICK - 0.5 <= arrived < start, (notice, start)
        elif notice.event == "phase_started":
            start = phases[notice.phase.order].applied_at.timestamp()
            assert start <= arrived <= start + 5, (notice, arrived, start)
    body = arrivals[next(k for k, d in deliveries.items() if d.notice.event == "phase_upcoming")]
    assert body.json["schema"] == "rollcall.notice/v1"
    assert body.json["rollout"]["key"] == rollout.key
    assert body.json["phase"]["starts_at"] is not None
    assert PlanRule.objects.filter(plan__rollout=rollout).count() == 4
