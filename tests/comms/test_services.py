"""comms.services: plans -> notices from rollout events, lead times that follow the timeline,
rollback corrections, the outbox's state machine. Time is passed in as `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from comms import channels, selectors, services
from comms.models import Audience, Channel, Delivery, Notice, NoticeEvent, PlanRule
from comms.services import outbox
from core.exceptions import ApplicationError
from rollouts import services as rollout_services
from rollouts.models import RolloutEvent
from tests.comms.factories import (
    AudienceFactory,
    ChannelFactory,
    DeliveryFactory,
    EmailChannelFactory,
    NoticeFactory,
    TemplateFactory,
    standard_audiences,
    started_rollout,
)
from tests.rollouts.factories import ReleaseFactory, make_rollout

pytestmark = pytest.mark.django_db

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
UI = RolloutEvent.Source.UI
SCHED = RolloutEvent.Source.SCHEDULER
E = NoticeEvent
S = Notice.State


def notices(rollout, **filters):
    return list(
        Notice.objects.filter(rollout=rollout, **filters)
        .select_related("audience", "phase")
        .order_by("id")
    )


def lead_notices(rollout, audience):
    return {
        n.phase.order: n
        for n in notices(rollout, event=E.PHASE_UPCOMING, audience=audience)
        if n.phase is not None
    }


@pytest.fixture
def audiences():
    return standard_audiences()


@pytest.fixture
def sent(monkeypatch):
    """Replace the network: record each message, succeed."""
    calls: list[channels.Message] = []

    def fake_send(message):
        calls.append(message)
        return channels.Result(status=200)

    monkeypatch.setattr(channels, "send", fake_send)
    return calls


# --------------------------------------------------------------------------------------------
# Events -> notices


def test_event_dispatch__rollout_started__plan_notices_per_audience(audiences):
    rollout = started_rollout(10, 50, 100, now=T0)

    handled = services.events_dispatch_pending(now=T0)

    assert handled == rollout.events.count() == 3  # created, started, advanced
    assert not RolloutEvent.objects.filter(dispatched_at__isnull=True).exists()
    started = notices(rollout, event=E.PHASE_STARTED)
    # Support hears every phase; beta testers the first; customers only at 100%.
    assert sorted(n.audience.name for n in started) == ["Beta testers", "Customer support"]
    assert all(n.state == S.SENDING and n.phase.order == 0 for n in started)
    # "Phase starting soon" for the phases to come: support and technical support, 24 h ahead.
    for audience in (audiences["support"], audiences["tech"]):
        lead = lead_notices(rollout, audience)
        assert sorted(lead) == [1, 2]
        assert lead[1].send_at == T0 + 48 * H - 24 * H
        assert lead[2].send_at == T0 + 96 * H - 24 * H
        assert all(n.state == S.SCHEDULED for n in lead.values())
    assert not notices(rollout, audience=audiences["customers"])


def test_event_dispatch__twice__creates_nothing_more(audiences):
    rollout = started_rollout(10, 100, now=T0)
    services.events_dispatch_pending(now=T0)
    before = Notice.objects.count()
    event = rollout.events.last()

    again = services.event_dispatch(event_id=event.id, now=T0)
    RolloutEvent.objects.filter(pk=event.pk).update(dispatched_at=None)
    replayed = services.event_dispatch(event_id=event.id, now=T0)

    assert again is False
    assert replayed is True  # handled again (e.g. marker lost) ...
    assert Notice.objects.count() == before  # ... but the dedupe keys create nothing new


def test_event_dispatch__deliveries_created_with_notice__one_per_recipient(audiences):
    EmailChannelFactory(
        audience=audiences["beta"], name="Two people", recipients=["a@x.io", "b@x.io"]
    )
    ChannelFactory(audience=audiences["beta"], name="Off", is_enabled=False)
    rollout = started_rollout(10, 100, now=T0)
    services.events_dispatch_pending(now=T0)

    notice = Notice.objects.get(rollout=rollout, audience=audiences["beta"])

    got = sorted((d.channel_name, d.recipient, d.state) for d in notice.deliveries.all())
    assert got == [
        ("Beta list", "beta-testers@example.com", Delivery.State.QUEUED),
        ("Two people", "a@x.io", Delivery.State.QUEUED),
        ("Two people", "b@x.io", Delivery.State.QUEUED),
    ]
    assert notice.rendered_subject and "Release" in notice.rendered_subject


def test_phase_started__full_exposure__customers_hear_general_availability(audiences):
    rollout = started_rollout(10, 100, now=T0)
    services.events_dispatch_pending(now=T0)

    rollout_services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="ok",
                                         now=T0 + H)  # fmt: skip
    services.events_dispatch_pending(now=T0 + H)

    customer = notices(rollout, audience=audiences["customers"])
    assert [(n.event, n.phase.order) for n in customer] == [(E.PHASE_STARTED, 1)]
    assert "everyone" in customer[0].rendered_text
    # The phase started early: its "starting soon" notices are cancelled, not sent.
    lead = lead_notices(rollout, audiences["support"])
    assert lead[1].state == S.CANCELLED
    completed = notices(rollout, event=E.COMPLETED)
    assert [n.audience.name for n in completed] == ["Technical support"]


def test_shadow_strategy__customers_not_in_the_plan(audiences):
    rollout = make_rollout(strategy="shadow")
    plan = services.plan_ensure(rollout=rollout)

    kinds = {r.audience.kind for r in plan.rules.select_related("audience")}

    assert Audience.Kind.CUSTOMER_SUPPORT in kinds
    assert Audience.Kind.CUSTOMERS not in kinds
    assert Audience.Kind.BETA_TESTERS not in kinds


# --------------------------------------------------------------------------------------------
# Lead-time notices follow the projected timeline


def test_lead_notice__rollout_paused__waits__resumed__moves_by_the_pause(audiences):
    rollout = started_rollout(10, 50, 100, now=T0)
    services.events_dispatch_pending(now=T0)
    support = audiences["support"]

    rollout_services.rollout_pause(rollout=rollout, actor=None, source=UI, now=T0 + 2 * H)
    services.events_dispatch_pending(now=T0 + 2 * H)
    paused = lead_notices(rollout, support)

    rollout_services.rollout_resume(rollout=rollout, actor=None, source=UI, now=T0 + 7 * H)
    services.events_dispatch_pending(now=T0 + 7 * H)
    resumed = lead_notices(rollout, support)

    assert paused[1].state == S.SCHEDULED and paused[1].send_at is None
    assert "paused" in paused[1].state_note
    # The 5 hours of pause stop the soak clock: phase 2 and its notice move by 5 hours.
    assert resumed[1].send_at == T0 + 48 * H + 5 * H - 24 * H
    assert resumed[1].id == paused[1].id


def test_lead_notice__held__nothing_sent_at_the_old_time(audiences, sent):
    rollout = started_rollout(10, 50, now=T0)
    services.events_dispatch_pending(now=T0)
    rollout_services.rollout_pause(rollout=rollout, actor=None, source=UI, now=T0 + H)
    # The sweep ran before the pause was dispatched: the notice still has its old time.
    old = lead_notices(rollout, audiences["support"])[1]
    assert old.send_at == T0 + 24 * H

    services.notices_send_due(now=T0 + 25 * H)  # the pause event is handled right after

    old.refresh_from_db()
    assert old.state == S.SCHEDULED and old.send_at is None
    assert not old.deliveries.exclude(state=Delivery.State.PENDING).exists()


def test_lead_notice__due__sent_at_its_time_not_before(audiences):
    rollout = started_rollout(10, 50, now=T0)
    services.events_dispatch_pending(now=T0)
    notice = lead_notices(rollout, audiences["support"])[1]

    early = services.notices_send_due(now=T0 + 24 * H - timedelta(seconds=5))
    notice.refresh_from_db()
    state_early = notice.state
    on_time = services.notices_send_due(now=T0 + 24 * H)
    notice.refresh_from_db()

    assert (early, state_early) == (0, S.SCHEDULED)
    assert on_time >= 1 and notice.state == S.SENDING
    assert "in 24 hours" in notice.rendered_subject
    assert "CET" in notice.rendered_text  # the audience's time zone (Europe/Berlin)
    assert notice.deliveries.get().state == Delivery.State.QUEUED


def test_lead_notice__phase_sooner_than_lead_time__due_at_once(audiences):
    rollout = started_rollout(10, 50, now=T0, soak=3 * H)
    services.events_dispatch_pending(now=T0)

    notice = lead_notices(rollout, audiences["support"])[1]
    services.notices_send_due(now=T0)
    notice.refresh_from_db()

    assert notice.send_at == T0 + 3 * H - 24 * H
    assert notice.state == S.SENDING
    assert "in 3 hours" in notice.rendered_subject


def test_lead_notice__rule_lead_time_edited__notices_move(audiences):
    rollout = started_rollout(10, 50, now=T0)
    services.events_dispatch_pending(now=T0)
    rule = PlanRule.objects.get(
        plan__rollout=rollout, audience=audiences["support"], event=E.PHASE_UPCOMING
    )

    services.plan_rule_update(rule=rule, actor=None, lead_time=2 * H, now=T0 + H)

    assert lead_notices(rollout, audiences["support"])[1].send_at == T0 + 46 * H


def test_lead_notice__time_set_by_a_person__plan_no_longer_moves_it(audiences):
    rollout = started_rollout(10, 50, now=T0)
    services.events_dispatch_pending(now=T0)
    notice = lead_notices(rollout, audiences["support"])[1]
    services.notice_update(notice=notice, actor=None, send_at=T0 + 10 * H, now=T0)

    rollout_services.rollout_pause(rollout=rollout, actor=None, source=UI, now=T0 + H)
    services.events_dispatch_pending(now=T0 + H)

    notice.refresh_from_db()
    assert notice.send_at == T0 + 10 * H and notice.time_is_fixed


# --------------------------------------------------------------------------------------------
# Rollback and cancel


def test_rollback__pending_cancelled_and_correction_to_everyone_who_heard(audiences, sent):
    rollout = started_rollout(10, 50, 100, now=T0)
    services.events_dispatch_pending(now=T0)
    heard = Notice.objects.get(rollout=rollout, audience=audiences["beta"])
    rollout_services.rollout_rollback(
        rollout=rollout, actor=None, source=UI, reason="Error rate <b>5%</b>", now=T0 + 3 * H
    )

    services.events_dispatch_pending(now=T0 + 3 * H)

    lead = lead_notices(rollout, audiences["support"])
    assert {n.state for n in lead.values()} == {S.CANCELLED}
    assert "rolled back" in lead[1].state_note
    rolled_back = {n.audience.name: n for n in notices(rollout, event=E.ROLLED_BACK)}
    # Support audiences by the plan; beta testers because they heard about phase 1.
    assert sorted(rolled_back) == ["Beta testers", "Customer support", "Technical support"]
    assert rolled_back["Beta testers"].corrects_id == heard.id
    assert "Correction" in rolled_back["Beta testers"].rendered_subject
    assert "Error rate <b>5%</b>" in rolled_back["Beta testers"].rendered_text
    assert "<b>" not in rolled_back["Beta testers"].rendered_html
    assert all(n.state == S.SENDING for n in rolled_back.values())
    assert "Customers" not in rolled_back  # they heard nothing: nothing to correct


def test_cancel__scheduled_notices_cancelled_no_correction(audiences):
    rollout = started_rollout(10, 50, now=T0)
    services.events_dispatch_pending(now=T0)
    manual = services.notice_create(
        audience=audiences["customers"], subject="Soon", body="Soon.", actor=None,
        rollout=rollout, send_at=T0 + 30 * H, now=T0,
    )  # fmt: skip

    rollout_services.rollout_cancel(rollout=rollout, actor=None, source=UI, now=T0 + H)
    services.events_dispatch_pending(now=T0 + H)

    manual.refresh_from_db()
    assert manual.state == S.CANCELLED
    assert set(manual.deliveries.values_list("state", flat=True)) == {Delivery.State.CANCELLED}
    assert not notices(rollout, event=E.ROLLED_BACK)
    assert not Notice.objects.filter(rollout=rollout, state=S.SCHEDULED).exists()


# --------------------------------------------------------------------------------------------
# Manual notices


def test_notice_create__no_time__draft_without_deliveries():
    audience = AudienceFactory()
    ChannelFactory(audience=audience)

    notice = services.notice_create(
        audience=audience, subject="Hi", body="Body", actor=None, now=T0
    )

    assert notice.state == S.DRAFT
    assert not notice.deliveries.exists()


def test_notice_create__scheduled__outbox_rows_in_same_transaction():
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    EmailChannelFactory(audience=audience, recipients=["one@x.io", "two@x.io"])

    notice = services.notice_create(
        audience=audience, subject="Hi", body="Body", actor=None, send_at=T0 + H, now=T0
    )

    assert notice.state == S.SCHEDULED
    assert notice.deliveries.filter(state=Delivery.State.PENDING).count() == 3


def test_notice_create__time_in_the_past__error_on_send_at():
    with pytest.raises(ApplicationError) as err:
        services.notice_create(
            audience=AudienceFactory(), subject="Hi", body="Body", actor=None,
            send_at=T0 - H, now=T0,
        )  # fmt: skip
    assert err.value.field == "send_at"


def test_notice_create__unknown_variable__refused_at_save():
    with pytest.raises(ApplicationError) as err:
        services.notice_create(
            audience=AudienceFactory(), subject="Hi", body="{{ relase.name }}", actor=None
        )
    assert err.value.field == "body"
    assert "release.name" in err.value.message
    assert not Notice.objects.exists()


def test_notice_send_now__dispatched_at_once():
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    release = ReleaseFactory(name="Faster checkout")

    notice = services.notice_create(
        audience=audience, subject="{{ release.name }} is here", body="Hi", actor=None,
        release=release, send_now=True, now=T0,
    )  # fmt: skip

    notice.refresh_from_db()
    assert notice.state == S.SENDING
    assert notice.rendered_subject == "Faster checkout is here"
    assert notice.deliveries.get().state == Delivery.State.QUEUED


def test_notice_send_now__audience_without_channel__failed_with_reason():
    notice = services.notice_create(
        audience=AudienceFactory(name="Nobody"), subject="Hi", body="Hi", actor=None,
        send_now=True, now=T0,
    )  # fmt: skip
    assert notice.state == S.FAILED
    assert "no enabled channel" in notice.state_note


def test_notice_update__sent_notice__refused():
    notice = NoticeFactory(state=S.SENT)
    with pytest.raises(ApplicationError) as err:
        services.notice_update(notice=notice, actor=None, subject="New")
    assert err.value.field == "state"


def test_notice_update__audience_changed__deliveries_follow():
    first, second = AudienceFactory(), AudienceFactory()
    ChannelFactory(audience=first, name="First hook")
    ChannelFactory(audience=second, name="Second hook")
    notice = services.notice_create(
        audience=first, subject="Hi", body="Hi", actor=None, send_at=T0 + H, now=T0
    )

    services.notice_update(notice=notice, actor=None, audience=second, now=T0)

    assert list(notice.deliveries.values_list("channel_name", flat=True)) == ["Second hook"]


def test_notice_cancel__scheduled__cancelled_with_who():
    audience = AudienceFactory()
    ChannelFactory(audience=audience)
    notice = services.notice_create(
        audience=audience, subject="Hi", body="Hi", actor=None, send_at=T0 + H, now=T0
    )

    services.notice_cancel(notice=notice, actor=None, reason="wrong date", now=T0)

    notice.refresh_from_db()
    assert notice.state == S.CANCELLED
    assert notice.state_note == "Cancelled by the system: wrong date"
    assert services.notices_send_due(now=T0 + 2 * H) == 0


# --------------------------------------------------------------------------------------------
# Deliveries: at most once, retries, failures


def dispatched(audience=None, *, kinds=(Channel.Kind.WEBHOOK,)):
    audience = audience or AudienceFactory()
    for kind in kinds:
        if kind == Channel.Kind.EMAIL:
            EmailChannelFactory(audience=audience)
        else:
            ChannelFactory(audience=audience, kind=kind)
    return services.notice_create(
        audience=audience, subject="Hi", body="Hi", actor=None, send_now=True, now=T0
    )


def test_delivery_send__success__sent_and_notice_sent(sent):
    notice = dispatched()
    delivery = notice.deliveries.get()

    state = services.delivery_send(delivery_id=delivery.id, now=T0)

    delivery.refresh_from_db()
    notice.refresh_from_db()
    assert state == delivery.state == Delivery.State.SENT
    assert delivery.attempts == 1 and delivery.sent_at == T0
    assert notice.state == S.SENT
    assert [m.delivery_id for m in sent] == [str(delivery.idempotency_key)]


def test_delivery_send__already_sent_or_in_flight__not_sent_again(sent):
    notice = dispatched()
    delivery = notice.deliveries.get()
    services.delivery_send(delivery_id=delivery.id, now=T0)
    in_flight = DeliveryFactory(state=Delivery.State.SENDING)

    again = services.delivery_send(delivery_id=delivery.id, now=T0)
    other = services.delivery_send(delivery_id=in_flight.id, now=T0)

    assert (again, other) == (Delivery.State.SENT, Delivery.State.SENDING)
    assert len(sent) == 1


def test_delivery_send__transient_error__retrying_then_raises(monkeypatch):
    def down(message):
        raise channels.TransientDeliveryError("HTTP 503", status=503)

    monkeypatch.setattr(channels, "send", down)
    delivery = dispatched().deliveries.get()

    with pytest.raises(channels.TransientDeliveryError):
        services.delivery_send(delivery_id=delivery.id, max_attempts=3, now=T0)

    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.RETRYING
    assert delivery.attempts == 1 and delivery.response_code == 503
    assert delivery.next_attempt_at == T0 + timedelta(seconds=services.RETRY_BACKOFF)


def test_delivery_send__last_attempt_fails__failed_and_notice_failed(monkeypatch):
    def down(message):
        raise channels.TransientDeliveryError("timeout")

    monkeypatch.setattr(channels, "send", down)
    notice = dispatched()
    delivery = notice.deliveries.get()
    for _ in range(2):
        with pytest.raises(channels.TransientDeliveryError):
            services.delivery_send(delivery_id=delivery.id, max_attempts=3, now=T0)

    state = services.delivery_send(delivery_id=delivery.id, max_attempts=3, now=T0)

    delivery.refresh_from_db()
    notice.refresh_from_db()
    assert state == Delivery.State.FAILED and delivery.attempts == 3
    assert delivery.last_error == "Gave up after 3 attempts: timeout"
    assert notice.state == S.FAILED


def test_delivery_send__permanent_error__failed_at_once_partially_failed_notice(monkeypatch):
    def send(message):
        if message.channel_kind == Channel.Kind.SLACK:
            raise channels.PermanentDeliveryError("HTTP 404: no_service", status=404)
        return channels.Result(status=200)

    monkeypatch.setattr(channels, "send", send)
    notice = dispatched(kinds=(Channel.Kind.SLACK, Channel.Kind.WEBHOOK))
    for delivery in notice.deliveries.all():
        services.delivery_send(delivery_id=delivery.id, now=T0)

    notice.refresh_from_db()
    failed = notice.deliveries.get(channel_kind=Channel.Kind.SLACK)
    assert failed.state == Delivery.State.FAILED and failed.attempts == 1
    assert failed.last_error == "HTTP 404: no_service"
    assert notice.state == S.PARTIALLY_FAILED
    assert "1 of 2" in notice.state_note


def test_delivery_retry__failed__queued_again_same_id(monkeypatch, sent):
    notice = dispatched()
    delivery = notice.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.FAILED, attempts=7)
    Notice.objects.filter(pk=notice.pk).update(state=S.FAILED)

    services.delivery_retry(delivery=delivery, actor=None, now=T0 + H)
    services.delivery_send(delivery_id=delivery.id, now=T0 + H)

    delivery.refresh_from_db()
    notice.refresh_from_db()
    assert delivery.state == Delivery.State.SENT and delivery.attempts == 1
    assert sent[0].delivery_id == str(delivery.idempotency_key)
    assert notice.state == S.SENT


def test_delivery_retry__not_failed__refused():
    delivery = dispatched().deliveries.get()
    with pytest.raises(ApplicationError):
        services.delivery_retry(delivery=delivery, actor=None)


def test_requeue_stuck__interrupted_send__queued_again_with_note():
    delivery = DeliveryFactory(state=Delivery.State.SENDING, attempts=1, started_at=T0)
    fresh = DeliveryFactory(
        state=Delivery.State.SENDING, attempts=1, started_at=T0 + 10 * H - timedelta(seconds=30)
    )
    lost = DeliveryFactory(state=Delivery.State.QUEUED, enqueued_at=T0 - H)

    count = services.deliveries_requeue_stuck(now=T0 + 10 * H)

    delivery.refresh_from_db()
    fresh.refresh_from_db()
    lost.refresh_from_db()
    assert count == 2
    assert delivery.state == Delivery.State.QUEUED and "interrupted" in delivery.last_error
    assert fresh.state == Delivery.State.SENDING
    assert lost.enqueued_at == T0 + 10 * H


def test_requeue_stuck__late_attempt_of_old_owner__outcome_ignored(sent):
    """A worker that was presumed dead but finishes after the re-queue does not overwrite."""
    delivery = DeliveryFactory(state=Delivery.State.SENDING, attempts=1, started_at=T0)
    services.deliveries_requeue_stuck(now=T0 + H)

    owned = outbox._finish_delivery(
        delivery.id, 1, state=Delivery.State.FAILED, error="late", now=T0 + H
    )

    delivery.refresh_from_db()
    assert owned is False
    assert delivery.state == Delivery.State.QUEUED


def test_notices_sweep__sending_notice_with_all_deliveries_done__finished():
    notice = NoticeFactory(state=S.SENDING)
    DeliveryFactory(notice=notice, state=Delivery.State.SENT)

    result = services.notices_sweep(now=T0)

    notice.refresh_from_db()
    assert result.finished == 1 and notice.state == S.SENT


# --------------------------------------------------------------------------------------------
# Templates, audiences, channels


def test_template_create__unknown_variable__error_names_field_and_suggests():
    with pytest.raises(ApplicationError) as err:
        services.template_create(
            name="T", event="custom", subject="Hi", body="Line\n{{ phase.nmae }}", actor=None
        )
    assert err.value.field == "body"
    assert "line 2" in err.value.message and "phase.name" in err.value.message


def test_template_create__default__replaces_previous_default():
    first = TemplateFactory(event="held", is_default=True)

    second = services.template_create(
        name="New held", event="held", subject="Held", body="Held.", is_default=True, actor=None
    )

    first.refresh_from_db()
    assert second.is_default and not first.is_default


def test_plan_rule_template_for_other_event__refused(audiences):
    rollout = make_rollout()
    template = TemplateFactory(event="held")
    with pytest.raises(ApplicationError) as err:
        services.plan_rule_create(
            rollout=rollout, audience=audiences["customers"], event="completed",
            template=template, actor=None,
        )  # fmt: skip
    assert err.value.field == "template"


def test_plan_rule_upcoming_without_lead_time__refused(audiences):
    with pytest.raises(ApplicationError) as err:
        services.plan_rule_create(
            rollout=make_rollout(), audience=audiences["customers"], event="phase_upcoming",
            actor=None,
        )  # fmt: skip
    assert err.value.field == "lead_time"


def test_plan_rule_template__used_for_the_notice(audiences):
    rollout = make_rollout(phases=None)
    services.plan_ensure(rollout=rollout)
    template = TemplateFactory(event="phase_started", subject="Custom {{ phase.name }}")
    rule = PlanRule.objects.get(
        plan__rollout=rollout, audience=audiences["support"], event="phase_started"
    )
    services.plan_rule_update(rule=rule, actor=None, template=template)

    rollout_services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    services.events_dispatch_pending(now=T0)

    notice = Notice.objects.get(rollout=rollout, audience=audiences["support"],
                                event="phase_started")  # fmt: skip
    assert notice.rendered_subject == "Custom 10%"


def test_audience_create__bad_timezone_and_contacts__field_errors():
    with pytest.raises(ApplicationError) as tz:
        services.audience_create(name="X", timezone="Mars/Olympus", actor=None)
    with pytest.raises(ApplicationError) as contacts:
        services.audience_create(name="X", contacts="Pat <pat@x.io>\nnot-an-email", actor=None)
    assert tz.value.field == "timezone"
    assert contacts.value.field == "contacts" and "Contact 2" in contacts.value.message


def test_audience_create__contacts_parsed_from_lines():
    audience = services.audience_create(
        name="Ops", contacts="Pat Smith <PAT@x.io>\nlee@x.io\npat@x.io", actor=None
    )
    assert audience.contacts == [
        {"name": "Pat Smith", "email": "pat@x.io"},
        {"name": "", "email": "lee@x.io"},
    ]


def test_channel_create__webhook__secret_generated_and_masked():
    channel = services.channel_create(
        audience=AudienceFactory(), kind="webhook", name="Hook",
        url="https://hooks.example.com/T0/abcdefgh", actor=None,
    )  # fmt: skip
    assert len(channel.signing_secret) == 64
    assert channel.masked_secret == "••••" + channel.signing_secret[-4:]
    assert channel.masked_url == "https://hooks.example.com/…efgh"


def test_channel_create__bad_url__field_error():
    with pytest.raises(ApplicationError) as err:
        services.channel_create(
            audience=AudienceFactory(), kind="slack", name="S", url="javascript:alert(1)",
            actor=None,
        )  # fmt: skip
    assert err.value.field == "url"


def test_channel_update__blank_url__keeps_secret_url():
    channel = ChannelFactory(url="https://hooks.example.com/secret")
    services.channel_update(channel=channel, actor=None, url="", name="Renamed")
    channel.refresh_from_db()
    assert channel.url == "https://hooks.example.com/secret" and channel.name == "Renamed"


def test_audience_delete__with_notices__refused():
    notice = NoticeFactory()
    with pytest.raises(ApplicationError):
        services.audience_delete(audience=notice.audience, actor=None)


# --------------------------------------------------------------------------------------------
# planned_notices (the selector the rollout page shows)


def test_planned_notices__describes_time_in_viewer_zone_and_phase(audiences):
    """Read on the rollout page: in the viewer's zone (here New York), not the audience's
    (Europe/Berlin, whose notice text keeps its own zone)."""
    rollout = started_rollout(10, 50, 100, now=T0)
    services.events_dispatch_pending(now=T0)

    with timezone.override("America/New_York"):
        planned = selectors.planned_notices(rollout, T0)
        texts = [p.description for p in planned]

    assert (
        "Notice to Customer support at Tue 5 Mar 2030, 04:00 EST, 24 h before Phase 2 (50%)"
        in texts
    )
    customers = [p for p in planned if p.audience.name == "Customers"]
    assert [(p.event, p.status, p.at) for p in customers] == [
        (E.PHASE_STARTED, "planned", T0 + 96 * H)
    ]
    assert planned[-1].status == "conditional"  # holds and rollbacks come last
    times = [p.at for p in planned if p.at]
    assert times == sorted(times)


def test_planned_notices__draft_without_plan__defaults_projected_if_started_now(audiences):
    rollout = make_rollout()
    planned = selectors.planned_notices(rollout, T0)
    assert any(p.event == E.PHASE_UPCOMING and p.phase.order == 1 for p in planned)
    assert not Notice.objects.exists()


def test_planned_notices__query_count_constant(audiences, django_assert_max_num_queries):
    small = started_rollout(10, 100, now=T0)
    big = started_rollout(1, 5, 10, 25, 50, 75, 100, now=T0)
    services.events_dispatch_pending(now=T0)

    with django_assert_max_num_queries(5):
        selectors.planned_notices(small, T0)
    with django_assert_max_num_queries(5):
        result = selectors.planned_notices(big, T0)
    assert len(result) > 10


def test_notice_list__query_count_constant(django_assert_num_queries):
    for _ in range(3):
        DeliveryFactory()
    with django_assert_num_queries(1):
        few = selectors.notice_list()
    for _ in range(20):
        DeliveryFactory()
    with django_assert_num_queries(1):
        many = selectors.notice_list()
    assert len(many) == len(few) + 20
    assert all(n.delivery_count == 1 for n in many)


def test_notice_about_rollout__manual__phase_variables_are_the_next_phase(audiences):
    rollout = started_rollout(10, 50, 100, now=T0)

    notice = services.notice_create(
        audience=audiences["support"], subject="Next: {{ phase.name }}",
        body="Starts {{ start_time }} ({{ starts_in }}) for {{ exposure }}.", actor=None,
        rollout=rollout, send_now=True, now=T0 + H,
    )  # fmt: skip

    assert notice.rendered_subject == "Next: 50%"
    assert (
        notice.rendered_text == "Starts Wed 6 Mar 2030, 10:00 CET (in 47 hours) for 50% of users."
    )


@pytest.mark.parametrize(("auto_resume", "resumed_notices"), [(False, 0), (True, 1)])
def test_hold_cleared__resumed_notice_only_when_the_rollout_runs_again(
    audiences, auto_resume, resumed_notices
):
    rollout = started_rollout(10, 50, now=T0)
    rollout_services.rollout_hold(
        rollout=rollout, actor=None, source=UI, reason="HighErrorRate", now=T0 + H
    )
    services.events_dispatch_pending(now=T0 + H)
    rollout.refresh_from_db()
    hold = rollout.holds.get()
    rollout_services.rollout_hold_clear(
        hold=hold, actor=None, source=UI, now=T0 + 2 * H, auto_resume=auto_resume
    )
    services.events_dispatch_pending(now=T0 + 2 * H)

    rollout.refresh_from_db()
    assert rollout.state == ("running" if auto_resume else "paused")
    assert len(notices(rollout, event=E.RESUMED)) == resumed_notices * len(
        {n.audience_id for n in notices(rollout, event=E.HELD)}
    )
    assert notices(rollout, event=E.HELD), "the hold itself was announced"
