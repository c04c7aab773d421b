"""factory_boy factories for flags (shared: add factories, do not change existing ones)."""

from __future__ import annotations

import factory

from flags.models import Environment, Flag, FlagState, SdkKey, Segment


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"env{n}")
    name = factory.LazyAttribute(lambda o: o.key.title())
    order = factory.Sequence(lambda n: n)


class FlagFactory(factory.django.DjangoModelFactory):
    """A flag row alone (no states: use FlagStateFactory or the services)."""

    class Meta:
        model = Flag

    key = factory.Sequence(lambda n: f"flag-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())
    type = Flag.Type.BOOLEAN


class FlagStateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FlagState

    flag = factory.SubFactory(FlagFactory)
    environment = factory.SubFactory(EnvironmentFactory)
    enabled = True
    rules = factory.LazyFunction(list)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    constraints = factory.LazyFunction(list)


class SdkKeyFactory(factory.django.DjangoModelFactory):
    """An SDK key; the raw secret is on `obj.raw` (choose it with `raw=...`)."""

    class Meta:
        model = SdkKey

    environment = factory.SubFactory(EnvironmentFactory)
    name = "Test key"
    raw = factory.LazyAttributeSequence(lambda o, n: f"rc_{o.environment.key}_testsecret{n:06d}")
    prefix = factory.LazyAttribute(lambda o: o.raw[:16])
    key_hash = factory.LazyAttribute(lambda o: SdkKey.hash(o.raw))

    @classmethod
    def _create(cls, model_class, *args, raw: str, **kwargs):
        obj = super()._create(model_class, *args, **kwargs)
        obj.raw = raw
        return obj

    @classmethod
    def _build(cls, model_class, *args, raw: str, **kwargs):
        obj = super()._build(model_class, *args, **kwargs)
        obj.raw = raw
        return obj
