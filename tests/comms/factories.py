"""factory_boy factories for notices (audiences, channels, templates, notices, deliveries)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory

from comms.models import Audience, Channel, Delivery, Notice, NoticeTemplate
from rollouts import services as rollout_services
from rollouts.models import RolloutEvent
from tests.rollouts.factories import make_rollout, phase

UI = RolloutEvent.Source.UI


class AudienceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Audience
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Audience {n}")
    kind = Audience.Kind.CUSTOM
    timezone = "UTC"
    contacts = factory.LazyAttribute(
        lambda o: [{"name": "Pat", "email": f"{o.name.lower().replace(' ', '-')}@example.com"}]
    )


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel

    audience = factory.SubFactory(AudienceFactory)
    kind = Channel.Kind.WEBHOOK
    name = factory.Sequence(lambda n: f"Channel {n}")
    url = "http://127.0.0.1:9/hook"
    signing_secret = factory.Sequence(lambda n: f"secret-{n:04d}-0123456789abcdef")


class EmailChannelFactory(ChannelFactory):
    kind = Channel.Kind.EMAIL
    url = ""
    signing_secret = ""


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NoticeTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    event = "custom"
    subject = "About {{ release.name }}"
    body = "**{{ release.name }}** for {{ audience.name }}."


class NoticeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notice

    audience = factory.SubFactory(AudienceFactory)
    subject = "Hello {{ audience.name }}"
    body = "A message for {{ audience.name }}."
    state = Notice.State.DRAFT


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    notice = factory.SubFactory(NoticeFactory)
    channel = factory.SubFactory(
        ChannelFactory, audience=factory.SelfAttribute("..notice.audience")
    )
    channel_kind = factory.LazyAttribute(lambda o: o.channel.kind)
    channel_name = factory.LazyAttribute(lambda o: o.channel.name)
    state = Delivery.State.QUEUED


def standard_audiences(*, url: str = "http://127.0.0.1:9/hook") -> dict[str, Audience]:
    """The four demo kinds, each with one channel: webhooks for support, email for others."""
    audiences = {
        "customers": AudienceFactory(name="Customers", kind=Audience.Kind.CUSTOMERS),
        "support": AudienceFactory(
            name="Customer support", kind=Audience.Kind.CUSTOMER_SUPPORT, timezone="Europe/Berlin"
        ),
        "tech": AudienceFactory(name="Technical support", kind=Audience.Kind.TECHNICAL_SUPPORT),
        "beta": AudienceFactory(name="Beta testers", kind=Audience.Kind.BETA_TESTERS),
    }
    EmailChannelFactory(audience=audiences["customers"], name="Customer list")
    ChannelFactory(audience=audiences["support"], name="Support hook", url=url)
    ChannelFactory(audience=audiences["tech"], name="Tech hook", url=url)
    EmailChannelFactory(audience=audiences["beta"], name="Beta list")
    return audiences


def started_rollout(
    *percentages: int, now: Any, soak: timedelta = timedelta(hours=48), **kwargs: Any
):
    """A running rollout (phase 1 applied at `now`), each later phase `soak` after the last."""
    phases = [phase(f"{p}%", p, soak=soak if i else None) for i, p in enumerate(percentages)]
    rollout = make_rollout(phases=phases, **kwargs)
    return rollout_services.rollout_start(rollout=rollout, actor=None, source=UI, now=now)
