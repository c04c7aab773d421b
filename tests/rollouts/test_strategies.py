"""rollouts.strategies: templates of each strategy and the flag rules a phase becomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import ApplicationError
from flags.engine import compile_snapshot
from flags.models import FlagState
from rollouts import services, strategies
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import (
    BETA_USERS,
    EnvironmentFactory,
    beta_segment,
    make_rollout,
    snapshot_for,
)

T0 = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
UI = RolloutEvent.Source.UI


def test_strategies__one_spec_per_rollout_strategy():
    assert set(strategies.STRATEGIES) == set(Rollout.Strategy.values)
    for spec in strategies.STRATEGIES.values():
        assert spec.flag_type in {"boolean", "string"}
        assert spec.stickiness in {"userId", "sessionId", "default", "hostId", "random"}
        assert spec.templates, spec.key
        assert len(spec.description) > 80


@pytest.mark.parametrize(
    ("strategy", "flag_type", "stickiness"),
    [
        ("feature_flag", "boolean", "default"),
        ("canary", "boolean", "default"),
        ("blue_green", "string", "default"),
        ("rolling", "boolean", "hostId"),
        ("shadow", "boolean", "random"),
    ],
)
def test_strategy_spec__flag_shape(strategy, flag_type, stickiness):
    spec = strategies.STRATEGIES[strategy]
    assert (spec.flag_type, spec.stickiness) == (flag_type, stickiness)


def test_templates__the_named_five_exist():
    names = {t.name for t in strategies.TEMPLATES.values()}
    assert {
        "Beta testers -> 5 -> 25 -> 50 -> 100",
        "Canary 1 -> 5 -> 25 -> 100",
        "Blue/green switch",
        "Rolling in 4 batches",
        "Shadow",
    } <= names


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", list(strategies.STRATEGIES))
def test_templates__each_strategy__creates_a_valid_plan_and_runs_to_completion(strategy):
    beta_segment()
    env = EnvironmentFactory(key="staging")
    spec = strategies.STRATEGIES[strategy]
    for template in spec.templates:
        rollout = make_rollout(environment=env, strategy=strategy, template=template.key)
        phases = list(rollout.phases.order_by("order"))
        assert [p.name for p in phases] == [p["name"] for p in template.phases]
        assert [p.percentage for p in phases] == [p["percentage"] for p in template.phases]
        assert [p.soak for p in phases] == [p["soak"] for p in template.phases]
        services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
        while Rollout.objects.get(pk=rollout.pk).state == Rollout.State.RUNNING:
            services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="t", now=T0)
        assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.COMPLETED
        services.rollout_rollback(rollout=rollout, actor=None, source=UI, now=T0)


@pytest.mark.django_db
def test_template_phases__segment_names_resolved_to_ids():
    beta = beta_segment()
    phases = strategies.template_phases("beta-5-25-50-100")
    assert phases[0]["segment"] == beta.id
    assert phases[-1]["segment"] is None
    assert set(phases[0]) == {
        "name", "percentage", "segment", "start_rule", "start_at", "soak", "gate", "notes",
    }  # fmt: skip


def test_template_phases__unknown__error_on_template():
    with pytest.raises(ApplicationError) as exc:
        strategies.template_phases("nope", segment_ids=lambda names: {})
    assert exc.value.field == "template"


def _doc(rules, *, key="f", variants=(), segments=()):
    return {
        "version": 2,
        "features": [
            {"name": key, "enabled": True, "strategies": rules, "variants": list(variants)}
        ],
        "segments": list(segments),
    }


BETA = {
    "id": 7,
    "constraints": [{"contextName": "userId", "operator": "IN", "values": ["beta-1"]}],
}


def test_exposure_rules__percentage__flexible_rollout_grouped_by_flag_key():
    rules = strategies.exposure_rules(
        strategy_key="feature_flag", flag_key="f", percentage=25, segment_id=None
    )
    assert rules == [
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "25", "stickiness": "default", "groupId": "f"},
            "constraints": [],
            "segments": [],
            "variants": [],
        }
    ]


def test_exposure_rules__segment_and_percentage__or_of_two_rules():
    rules = strategies.exposure_rules(
        strategy_key="feature_flag", flag_key="f", percentage=5, segment_id=7
    )
    assert [(r["parameters"]["rollout"], r["segments"]) for r in rules] == [("100", [7]), ("5", [])]
    snap = compile_snapshot(_doc(rules, segments=[BETA]))
    assert snap.evaluate("f", {"userId": "beta-1"}).enabled
    on = sum(snap.evaluate("f", {"userId": f"u{i}"}).enabled for i in range(2000))
    assert 40 < on < 170


def test_exposure_rules__segment_only__only_that_audience():
    rules = strategies.exposure_rules(
        strategy_key="feature_flag", flag_key="f", percentage=None, segment_id=7
    )
    snap = compile_snapshot(_doc(rules, segments=[BETA]))
    assert snap.evaluate("f", {"userId": "beta-1"}).enabled
    assert not any(snap.evaluate("f", {"userId": f"u{i}"}).enabled for i in range(500))


def test_exposure_rules__zero__nobody():
    rules = strategies.exposure_rules(
        strategy_key="canary", flag_key="f", percentage=0, segment_id=None
    )
    snap = compile_snapshot(_doc(rules))
    assert not any(snap.evaluate("f", {"userId": f"u{i}"}).enabled for i in range(500))


def test_exposure_rules__canary__sticky_by_session_when_no_user():
    rules = strategies.exposure_rules(
        strategy_key="canary", flag_key="f", percentage=50, segment_id=None
    )
    snap = compile_snapshot(_doc(rules))
    for i in range(50):
        ctx = {"sessionId": f"s{i}"}
        first = snap.evaluate("f", ctx).enabled
        assert all(snap.evaluate("f", ctx).enabled == first for _ in range(5))


def test_exposure_rules__rolling__keyed_by_host_id():
    rules = strategies.exposure_rules(
        strategy_key="rolling", flag_key="f", percentage=50, segment_id=None
    )
    snap = compile_snapshot(_doc(rules))
    hosts = [snap.evaluate("f", {"properties": {"hostId": f"web-{i}"}}).enabled for i in range(400)]
    assert 150 < sum(hosts) < 250
    # Without a host id nothing moves (a named stickiness field that is missing is false).
    assert not snap.evaluate("f", {"userId": "u1"}).enabled


def test_exposure_rules__shadow__random_share_of_requests():
    rules = strategies.exposure_rules(
        strategy_key="shadow", flag_key="f", percentage=30, segment_id=None
    )
    assert rules[0]["parameters"]["stickiness"] == "random"
    snap = compile_snapshot(_doc(rules))
    mirrored = sum(snap.evaluate("f", {"userId": "same"}).enabled for _ in range(2000))
    assert 450 < mirrored < 750  # random per request, not sticky per user


def test_exposure_rules__blue_green__slot_by_variant_and_preview_audience():
    variants = [
        {"name": "blue", "weight": 1000, "payload": {"type": "string", "value": "blue"}},
        {"name": "green", "weight": 0, "payload": {"type": "string", "value": "green"}},
    ]
    blue = strategies.exposure_rules(
        strategy_key="blue_green", flag_key="f", percentage=0, segment_id=7
    )
    snap = compile_snapshot(_doc(blue, variants=variants, segments=[BETA]))
    assert snap.evaluate("f", {"userId": "beta-1"}).payload == {"type": "string", "value": "green"}
    assert snap.evaluate("f", {"userId": "u1"}).payload == {"type": "string", "value": "blue"}
    green = strategies.exposure_rules(
        strategy_key="blue_green", flag_key="f", percentage=100, segment_id=7
    )
    snap = compile_snapshot(_doc(green, variants=variants, segments=[BETA]))
    assert {snap.evaluate("f", {"userId": f"u{i}"}).variant for i in range(100)} == {"green"}


@pytest.mark.django_db
def test_blue_green__through_the_flag_snapshot__beta_previews_then_everyone_switches():
    env = EnvironmentFactory(key="production")
    beta_segment()
    rollout = make_rollout(environment=env, strategy="blue_green", template="blue-green-switch")
    services.rollout_start(rollout=rollout, actor=None, source=UI, now=T0)
    snap = snapshot_for(env)
    assert snap.evaluate(rollout.flag.key, {"userId": BETA_USERS[0]}).variant == "green"
    assert snap.evaluate(rollout.flag.key, {"userId": "someone"}).variant == "blue"
    # The switch is a manual gate an hour later: a person continues, no reason needed then.
    later = T0 + timedelta(hours=1)
    services.rollout_advance_now(rollout=rollout, actor=None, source=UI, reason="", now=later)
    snap = snapshot_for(env)
    assert snap.evaluate(rollout.flag.key, {"userId": "someone"}).variant == "green"
    state = FlagState.objects.get(flag=rollout.flag, environment=env)
    assert state.rules[0]["parameters"]["groupId"] == rollout.flag.key


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", list(strategies.STRATEGIES))
def test_ofrep_example__copyable_curl_for_the_flag(strategy):
    beta_segment()
    env = EnvironmentFactory(key="staging")
    rollout = make_rollout(environment=env, strategy=strategy, template=None)
    text = strategies.STRATEGIES[strategy].ofrep_example(rollout, "https://rollcall.example/")
    assert f"https://rollcall.example/ofrep/v1/evaluate/flags/{rollout.flag.key}" in text
    assert "Authorization: Bearer" in text
    assert '"context"' in text


@pytest.mark.django_db
@pytest.mark.parametrize("strategy_key", sorted(strategies.STRATEGIES))
def test_ofrep_example__pasted_into_a_shell__sends_the_sdk_key(strategy_key):
    import subprocess

    beta_segment()
    template = strategies.STRATEGIES[strategy_key].templates[0].key
    rollout = make_rollout(strategy=strategy_key, template=template)
    example = strategies.STRATEGIES[strategy_key].ofrep_example(rollout, "http://rollcall.test")
    # Replace curl by a function that prints its arguments, one per line.
    script = "curl() { printf '%s\\n' \"$@\"; }\n" + example
    result = subprocess.run(
        ["bash", "-c", script],
        env={"ROLLCALL_SDK_KEY": "rc_test_secret", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    args = result.stdout.splitlines()
    assert "Authorization: Bearer rc_test_secret" in args
    assert f"http://rollcall.test/ofrep/v1/evaluate/flags/{rollout.flag.key}" in args
