"""Customer lookup: the same answers as OFREP, and which rollouts a customer is in."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from django.urls import reverse

from flags import services as flag_services
from flags.models import Flag
from rollouts import services
from rollouts.models import Rollout
from support import selectors as sel
from support.forms import CustomerLookupForm
from tests.support.factories import (
    BETA_USERS,
    UI,
    EnvironmentFactory,
    ReleaseFactory,
    aware,
    beta_segment,
    make_rollout,
    phase,
)

NOW = aware(2026, 11, 24, 10, 42)
PLANS = ["free", "pro", "enterprise", None]
COUNTRIES = ["DE", "FR", "US", None]
VERSIONS = ["1.2.3", "2.0.0", "2.0.0-beta.1", "10.1.0", None]


@pytest.fixture
def world(db):
    """Two environments with flags of every kind and rollouts in several states."""
    production = EnvironmentFactory(key="production", name="Production", order=2)
    staging = EnvironmentFactory(key="staging", name="Staging", order=1)
    beta = beta_segment()
    # A canary at 25%, phase 2 of 4.
    canary = make_rollout(environment=production, release=ReleaseFactory(name="Checkout v2"))
    started = NOW - timedelta(days=2)
    services.rollout_start(rollout=canary, actor=None, source=UI, now=started)
    services.rollout_advance_now(
        rollout=canary, actor=None, source=UI, reason="t", now=started + timedelta(days=1)
    )
    # Blue/green previewing green for beta testers.
    blue_green = make_rollout(
        environment=production,
        release=ReleaseFactory(name="Search engine"),
        strategy=Rollout.Strategy.BLUE_GREEN,
        phases=[phase("Preview", 0, segment=beta.id), phase("Switch", 100, gate="manual")],
    )
    services.rollout_start(rollout=blue_green, actor=None, source=UI, now=started)
    # A feature flag for beta testers and 10% of users, held.
    feature = make_rollout(
        environment=staging,
        release=ReleaseFactory(name="Dark mode"),
        strategy=Rollout.Strategy.FEATURE_FLAG,
        phases=[phase("Beta and 10%", 10, segment=beta.id), phase("All", 100)],
    )
    services.rollout_start(rollout=feature, actor=None, source=UI, now=started)
    # Hand-written flags: targeting on plan/country/version, variants, a disabled one.
    targeted = flag_services.flag_create(key="pro-export", name="Pro export", actor=None)
    flag_services.flag_state_update(
        flag=targeted,
        environment=production,
        actor=None,
        enabled=True,
        rules=[
            {
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": "x"},
                "constraints": [
                    {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]},
                    {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "2.0.0"},
                ],
            },
            {
                "name": "default",
                "constraints": [{"contextName": "country", "operator": "IN", "values": ["FR"]}],
            },
        ],
    )
    colour = flag_services.flag_create(
        key="button-colour",
        name="Button colour",
        type=Flag.Type.STRING,
        actor=None,
        variants=[
            {"name": "red", "weight": 500, "payload": {"type": "string", "value": "red"}},
            {"name": "blue", "weight": 500, "payload": {"type": "string", "value": "blue"}},
        ],
    )
    flag_services.flag_state_update(
        flag=colour,
        environment=production,
        actor=None,
        enabled=True,
        rules=[{"name": "flexibleRollout", "parameters": {"rollout": "50"}}],
    )
    flag_services.flag_create(key="kill-switch", name="Kill switch", actor=None)
    keys = {}
    for env in (production, staging):
        _, raw = flag_services.sdk_key_create(environment=env, name="test", actor=None)
        keys[env.key] = raw
    return {
        "production": production,
        "staging": staging,
        "canary": canary,
        "blue_green": blue_green,
        "feature": feature,
        "keys": keys,
    }


def _ofrep(client, raw_key: str, context: dict) -> dict[str, dict]:
    response = client.post(
        "/ofrep/v1/evaluate/flags",
        data=json.dumps({"context": context}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    assert response.status_code == 200, response.content
    return {item["key"]: item for item in response.json()["flags"]}


def _as_ofrep(answer: sel.FlagAnswer) -> dict:
    """A lookup answer in OFREP's shape, to compare field by field."""
    if answer.error_code:
        return {"key": answer.key, "errorCode": answer.error_code}
    out = {"key": answer.key, "reason": answer.reason, "variant": answer.variant}
    if answer.has_value:
        out["value"] = answer.value
    return out


def _strip(item: dict) -> dict:
    keep = ("key", "value", "reason", "variant", "errorCode")
    return {k: v for k, v in item.items() if k in keep}


def _random_context(rng: random.Random) -> dict[str, str]:
    user = rng.choice([*BETA_USERS, *(f"user-{rng.randrange(10_000)}" for _ in range(3))])
    data = {"user_id": user}
    for field, choices in (("plan", PLANS), ("country", COUNTRIES), ("app_version", VERSIONS)):
        value = rng.choice(choices)
        if value:
            data[field] = value
    if rng.random() < 0.3:
        data["email"] = f"{user}@example.com"
    if rng.random() < 0.3:
        data["extra"] = f"sessionId=s-{rng.randrange(100)}\ncompany=acme"
    return data


def test_customer_lookup__many_generated_contexts__equals_ofrep(client, world):
    rng = random.Random(20261124)
    environments = [world["production"], world["staging"]]
    compared = 0
    for _ in range(150):
        form = CustomerLookupForm(_random_context(rng), environments=environments)
        assert form.is_valid(), form.errors
        context = form.ofrep_context()

        result = sel.customer_lookup(context=context, now=NOW)

        for env_answer in result.environments:
            ofrep = _ofrep(client, world["keys"][env_answer.environment.key], context)
            lookup = {f.key: _as_ofrep(f) for f in env_answer.flags}
            assert lookup == {k: _strip(v) for k, v in ofrep.items()}, context
            compared += len(lookup)
    assert compared > 150 * 8  # every flag of both environments, every time


def test_customer_lookup__in_rollout__exactly_when_the_flag_is_on(client, world):
    canary = world["canary"]
    rng = random.Random(7)
    seen = {True: 0, False: 0}
    for i in range(200):
        context = {"targetingKey": f"cust-{rng.randrange(1_000_000)}-{i}"}
        result = sel.customer_lookup(context=context, environment_key="production", now=NOW)
        (prod,) = result.environments
        membership = next(m for m in prod.memberships if m.rollout.pk == canary.pk)
        on = _ofrep(client, world["keys"]["production"], context)[canary.flag.key]["value"]
        assert membership.is_in is on
        seen[on] += 1
    # Around 25% of customers are in the canary: both cases were exercised.
    assert 20 <= seen[True] <= 90 and seen[False] > 100


def test_customer_lookup__customer_in_canary__says_phase_and_since(world):
    canary = world["canary"]
    user = _user_with(world, canary, on=True)

    result = sel.customer_lookup(context={"targetingKey": user}, now=NOW)

    prod = next(e for e in result.environments if e.environment.key == "production")
    membership = next(m for m in prod.memberships if m.rollout.pk == canary.pk)
    assert membership.is_in is True
    assert "In the canary since" in membership.text
    assert "phase 2 of 4 (Canary 25%)" in membership.text
    # Bucket <= 1 would have been in since phase 1; otherwise since phase 2 started.
    phases = list(canary.phases.order_by("order"))
    assert membership.since in {phases[0].applied_at, phases[1].applied_at}


def test_customer_lookup__customer_outside_canary__not_in(world):
    canary = world["canary"]
    user = _user_with(world, canary, on=False)

    result = sel.customer_lookup(context={"targetingKey": user}, environment_key="production")

    (prod,) = result.environments
    membership = next(m for m in prod.memberships if m.rollout.pk == canary.pk)
    assert membership.is_in is False
    assert membership.text.startswith("Not in the canary")


def test_customer_lookup__beta_tester__in_blue_green_preview_others_not(world):
    blue_green = world["blue_green"]

    def membership(user):
        result = sel.customer_lookup(context={"targetingKey": user}, environment_key="production")
        return next(m for m in result.environments[0].memberships if m.rollout.pk == blue_green.pk)

    assert membership(BETA_USERS[0]).is_in is True
    assert membership("someone-else").is_in is False


def test_customer_lookup__environment_filter__only_that_environment(world):
    result = sel.customer_lookup(context={"targetingKey": "u"}, environment_key="staging")

    assert [e.environment.key for e in result.environments] == ["staging"]
    assert [m.rollout.pk for m in result.environments[0].memberships] == [world["feature"].pk]


def _user_with(world, rollout, *, on: bool) -> str:
    from flags import snapshot

    snap = snapshot.get_snapshot(rollout.environment_id)
    for i in range(10_000):
        user = f"probe-{i}"
        if snap.evaluate(rollout.flag.key, {"userId": user}).enabled is on:
            return user
    raise AssertionError("no such user")


# --------------------------------------------------------------------------------------------
# The page


def test_lookup_page__customer__lists_flags_and_rollouts(support_client, world):
    user = _user_with(world, world["canary"], on=True)

    response = support_client.get(
        reverse("support:lookup"), {"user_id": user, "plan": "pro", "app_version": "2.1.0"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-rollout="{world["canary"].key}" data-in="yes"' in body
    assert 'data-flag="pro-export"' in body
    assert "TARGETING_MATCH" in body  # pro-export matches on plan and version
    assert "Checkout v2" in body


def test_lookup_page__htmx__renders_results_partial_only(support_client, world):
    response = support_client.get(
        reverse("support:lookup"), {"user_id": "u-1"}, headers={"HX-Request": "true"}
    )

    body = response.content.decode()
    assert body.lstrip().startswith('<section id="lookup-results"')
    assert "<form" not in body


def test_lookup_page__bad_extra_line__says_which_line(support_client, world):
    response = support_client.get(
        reverse("support:lookup"), {"user_id": "u-1", "extra": "company=acme\nnot a pair"}
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "Line 2" in body and "key=value" in body
    assert 'data-environment="' not in body  # no answers for an invalid form


def test_lookup_page__no_user_id__asks_for_it(support_client, world):
    response = support_client.get(reverse("support:lookup"), {"user_id": "  "})

    assert "Enter the customer" in response.content.decode() or "required" in (
        response.content.decode()
    )


def test_lookup_form__named_fields_win_over_free_lines():
    form = CustomerLookupForm(
        {"user_id": "u-9", "plan": "pro", "extra": "plan=free\ntargetingKey=other\nuserId=x"},
        environments=[],
    )
    assert form.is_valid(), form.errors
    assert form.ofrep_context() == {"plan": "pro", "targetingKey": "u-9"}


@pytest.mark.hold_change_check
def test_lookup_page__query_count__constant_in_the_number_of_rollouts(support_client, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("support:lookup")
    params = {"user_id": "u-42", "plan": "pro"}
    support_client.get(url, params)  # compiles the snapshots once, as a warm server has them

    with CaptureQueriesContext(connection) as small:
        support_client.get(url, params)
    for i in range(6):
        rollout = make_rollout(
            environment=world["production"], release=ReleaseFactory(name=f"More {i}")
        )
        services.rollout_start(rollout=rollout, actor=None, source=UI, now=NOW)
    support_client.get(url, params)  # the flags changed: snapshots are rebuilt once
    with CaptureQueriesContext(connection) as large:
        response = support_client.get(url, params)

    assert response.content.decode().count("data-in=") == 3 + 6
    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.mark.parametrize("field", ["user_id", "plan", "extra"])
def test_lookup_form__lone_surrogate__form_error_not_evaluated(field):
    from support.forms import CustomerLookupForm

    data = {"user_id": "u1", field: "x=\ud800" if field == "extra" else "\ud800"}
    form = CustomerLookupForm(data, environments=[])
    assert not form.is_valid()
    assert "surrogate" in str(form.errors)


# --------------------------------------------------------------------------------------------
# Pages of flags, and the flag search


def _more_flags(world, count: int, *, start: int = 0) -> list[str]:
    """`count` flags named unlike their keys, every third with a rule in production."""
    keys = []
    for i in range(start, start + count):
        flag = flag_services.flag_create(key=f"zz-flag-{i:03d}", name=f"Extra {i}", actor=None)
        if i % 3 == 0:
            flag_services.flag_state_update(
                flag=flag, environment=world["production"], actor=None, enabled=True,
                rules=[{"name": "flexibleRollout", "parameters": {"rollout": "50"}}],
            )  # fmt: skip
        keys.append(flag.key)
    return keys


def _flag_rows(body: str) -> list[str]:
    import re

    return re.findall(r'<tr data-flag="([^"]+)"', body)


def test_lookup_page__query_count__constant_in_the_number_of_flags(
    support_client, world, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from flags import freshness, snapshot

    # The twice-a-second change check (one versions query without Redis) runs by the wall
    # clock; hold that clock still so a slow machine cannot add it to one count only. The
    # flags' changes are then seen as a new process sees them (`forget_seen`).
    monkeypatch.setattr(freshness, "_clock", lambda: 1_000_000.0)
    url = reverse("support:lookup")
    params = {"user_id": "u-42", "plan": "pro"}

    _more_flags(world, 10)
    snapshot.forget_seen()
    support_client.get(url, params)  # compiles the snapshots once, as a warm server has them
    with CaptureQueriesContext(connection) as small:
        few = support_client.get(url, params).content.decode()
    _more_flags(world, 110, start=10)
    snapshot.forget_seen()
    support_client.get(url, params)  # the flags changed: snapshots are rebuilt once
    with CaptureQueriesContext(connection) as large:
        many = support_client.get(url, params).content.decode()

    assert len(large.captured_queries) == len(small.captured_queries)
    per_page = sel.LOOKUP_FLAGS_PER_PAGE
    assert len(_flag_rows(few)) < 2 * per_page  # both environments, every flag on one page
    assert len(_flag_rows(many)) == 2 * per_page  # a page in each environment
    assert "Extra 3" in many and "(see rule 1)" in many and "Checkout v2" in many
    assert "page 1 of 3" in many


def test_lookup_page__page_2__the_next_flags_in_key_order_query_kept(support_client, world):
    _more_flags(world, 60)
    everything = sel.customer_lookup(
        context={"targetingKey": "u-7"}, environment_key="production", per_page=10_000
    )
    keys = [f.key for f in everything.environments[0].flags]
    assert keys == sorted(keys) and len(keys) > 60

    response = support_client.get(
        reverse("support:lookup"), {"user_id": "u-7", "environment": "production", "page": 2}
    )

    body = response.content.decode()
    per_page = sel.LOOKUP_FLAGS_PER_PAGE
    assert _flag_rows(body) == keys[per_page : 2 * per_page]
    assert "Page 2 of 2" in body
    assert 'href="?user_id=u-7&amp;environment=production&amp;page=1"' in body
    assert 'rel="next"' not in body
    # The rollouts are about the customer, whatever the page.
    assert f'data-rollout="{world["canary"].key}"' in body


def test_lookup_page__page_past_the_last__the_last_page(support_client, world):
    _more_flags(world, 60)
    response = support_client.get(
        reverse("support:lookup"), {"user_id": "u-7", "environment": "production", "page": 99}
    )
    body = response.content.decode()
    assert "Page 2 of 2" in body
    assert _flag_rows(body)[-1] == "zz-flag-059"


def test_lookup_page__flag_search__by_name_or_key_with_its_rollouts_only(support_client, world):
    _more_flags(world, 60)
    url = reverse("support:lookup")

    by_name = support_client.get(url, {"user_id": "u-7", "q": "button COL"}).content.decode()
    by_key = support_client.get(url, {"user_id": "u-7", "q": "flag-05"}).content.decode()
    canary = support_client.get(url, {"user_id": "u-7", "q": world["canary"].flag.key})

    assert _flag_rows(by_name) == ["button-colour", "button-colour"]  # both environments
    assert 'data-rollout="' not in by_name  # no rollout drives button-colour
    assert sorted(set(_flag_rows(by_key))) == [f"zz-flag-{i:03d}" for i in range(50, 60)]
    body = canary.content.decode()
    assert f'data-rollout="{world["canary"].key}"' in body
    assert f'data-rollout="{world["blue_green"].key}"' not in body


def test_customer_lookup__rollout_flag_on_another_page__membership_still_answered(world):
    canary = world["canary"]
    user = _user_with(world, canary, on=True)

    result = sel.customer_lookup(
        context={"targetingKey": user}, environment_key="production", per_page=1, page=1
    )

    (prod,) = result.environments
    assert [f.key for f in prod.flags] != [canary.flag.key]  # not on this page
    membership = next(m for m in prod.memberships if m.rollout.pk == canary.pk)
    assert membership.is_in is True
    assert prod.flag_count > 1
