"""Real SDKs against a live Rollcall: OpenFeature + OFREP provider and the Unleash Python SDK.

Both must give the engine's answers for a few hundred seeded random contexts on flags with
percentage rollouts, constraints, segments, strategy and feature variants and typed payloads.
"""

from __future__ import annotations

import random
import socket
import time

import pytest
from openfeature import api as openfeature_api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from UnleashClient import UnleashClient

from flags import engine, services, snapshot
from flags.models import Environment, Flag
from tests.conftest import clear_flag_caches

N_CONTEXTS = 250
PLANS = ["free", "pro", "enterprise", "Pro"]
VERSIONS = ["1.9.9", "2.0.0", "2.3.1-beta.1", "3.0.0"]
COUNTRIES = ["NO", "SE", "DK", "US"]
BOOLEAN_FLAGS = ["rollout-30", "plan-gate", "beta-segment", "semver-num", "variant-strategy", "off"]


@pytest.fixture
def base_url(live_server) -> str:
    # The test server writes headers and body separately: without TCP_NODELAY every answer
    # waits for the client's delayed ACK (~40 ms). "localhost" may try ::1 first.
    live_server.thread.httpd.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return live_server.url.replace("localhost", "127.0.0.1")


@pytest.fixture
def rollcall(transactional_db, live_server):
    clear_flag_caches()
    env = Environment.objects.create(key="production", name="Production")
    _, raw_key = services.sdk_key_create(environment=env, name="SDK test", actor=None)
    beta = services.segment_create(
        name="Beta testers",
        actor=None,
        constraints=[
            {
                "contextName": "userId",
                "operator": "IN",
                "values": [f"user-{i}" for i in range(0, 400, 7)],
            }
        ],
    )

    def make(key, rules, *, enabled=True, **kwargs):
        flag = services.flag_create(key=key, name=key, actor=None, **kwargs)
        services.flag_state_update(
            flag=flag, environment=env, actor=None, enabled=enabled, rules=rules
        )

    make(
        "rollout-30",
        [{"name": "flexibleRollout", "parameters": {"rollout": "30", "stickiness": "userId"}}],
    )
    make(
        "plan-gate",
        [
            {
                "name": "flexibleRollout",
                "parameters": {"rollout": "60", "stickiness": "default", "groupId": "plans"},
                "constraints": [
                    {
                        "contextName": "plan",
                        "operator": "IN",
                        "values": ["pro", "enterprise"],
                    },
                    {
                        "contextName": "country",
                        "operator": "NOT_IN",
                        "values": ["US"],
                    },
                ],
            }
        ],
    )
    make(
        "beta-segment",
        [
            {"name": "default", "segments": [beta.id]},
            {"name": "flexibleRollout", "parameters": {"rollout": "10", "stickiness": "userId"}},
        ],
    )
    make(
        "semver-num",
        [
            {
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "default"},
                "constraints": [
                    {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "2.0.0"},
                    {"contextName": "age", "operator": "NUM_GT", "value": "30"},
                    {
                        "contextName": "email",
                        "operator": "STR_ENDS_WITH",
                        "values": ["@ACME.IO"],
                        "caseInsensitive": True,
                    },
                ],
            }
        ],
    )
    make(
        "variant-strategy",
        [
            {
                "name": "flexibleRollout",
                "parameters": {"rollout": "70", "stickiness": "userId", "groupId": "vs"},
                "variants": [
                    {"name": "a", "weight": 200, "weightType": "variable", "stickiness": "userId"},
                    {"name": "b", "weight": 300, "weightType": "variable", "stickiness": "userId"},
                    {"name": "c", "weight": 500, "weightType": "variable", "stickiness": "userId"},
                ],
            }
        ],
    )
    make("off", [{"name": "default"}], enabled=False)
    make(
        "headline",
        [{"name": "flexibleRollout", "parameters": {"rollout": "80", "stickiness": "userId"}}],
        type="string",
        variants=[
            {"name": "short", "weight": 333, "payload": {"type": "string", "value": "Buy"}},
            {"name": "long", "weight": 667, "payload": {"type": "string", "value": "Buy it now"}},
        ],
    )
    make(
        "discount",
        [{"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "userId"}}],
        type="number",
        variants=[
            {"name": "small", "weight": 500, "payload": {"type": "number", "value": "2.5"}},
            {"name": "large", "weight": 500, "payload": {"type": "number", "value": "12.75"}},
        ],
    )
    yield env, raw_key
    clear_flag_caches()


def _contexts():
    rng = random.Random(20261127)
    for _ in range(N_CONTEXTS):
        attributes = {
            "plan": rng.choice(PLANS),
            "country": rng.choice(COUNTRIES),
            "appVersion": rng.choice(VERSIONS),
            "age": str(rng.randint(18, 70)),
            "email": rng.choice(["a@acme.io", "b@Acme.IO", "c@example.com"]),
        }
        yield f"user-{rng.randint(0, 400)}", attributes


def test_openfeature_ofrep_provider__many_contexts__same_answers_as_engine(rollcall, base_url):
    env, raw_key = rollcall
    provider = OFREPProvider(
        base_url, headers_factory=lambda: {"Authorization": f"Bearer {raw_key}"}
    )
    openfeature_api.set_provider(provider, "rollcall")
    client = openfeature_api.get_client("rollcall")
    try:
        seen = {"on": 0, "off": 0, "reasons": set()}
        snap = snapshot.get_snapshot(env.id)
        for user, attributes in _contexts():
            of_ctx = EvaluationContext(targeting_key=user, attributes=attributes)
            ctx = engine.context_from_ofrep({"targetingKey": user, **attributes})
            for key in BOOLEAN_FLAGS:
                expected = snap.evaluate(key, ctx)
                details = client.get_boolean_details(key, not expected.enabled, of_ctx)
                assert details.error_code is None, (key, details.error_message)
                assert details.value is expected.enabled, (key, user, attributes)
                assert details.variant == expected.variant, (key, user)
                assert str(getattr(details.reason, "value", details.reason)) == expected.reason
                seen["on" if expected.enabled else "off"] += 1
                seen["reasons"].add(expected.reason)
            headline = snap.evaluate("headline", ctx)
            text = client.get_string_details("headline", "fallback", of_ctx)
            assert text.value == (
                headline.payload["value"] if headline.variant_enabled else "fallback"
            )
            assert text.variant == headline.variant
            discount = snap.evaluate("discount", ctx)
            number = client.get_float_details("discount", -1.0, of_ctx)
            assert number.error_code is None, number.error_message
            expected_number = float(discount.payload["value"]) if discount.variant_enabled else -1.0
            assert number.value == expected_number
        assert seen["on"] > 100 and seen["off"] > 100
        assert seen["reasons"] >= {"SPLIT", "TARGETING_MATCH", "DEFAULT", "DISABLED"}
        missing = client.get_boolean_details("no-such-flag", True, EvaluationContext("u"))
        assert missing.value is True
        assert str(getattr(missing.error_code, "value", missing.error_code)) == "FLAG_NOT_FOUND"
    finally:
        openfeature_api.clear_providers()


def test_unleash_python_sdk__many_contexts__same_answers_as_engine(rollcall, base_url, tmp_path):
    env, raw_key = rollcall
    client = UnleashClient(
        url=base_url + "/api",
        app_name="rollcall-integration",
        instance_id="it-1",
        refresh_interval=1,
        disable_metrics=True,
        custom_headers={"Authorization": raw_key},
        cache_directory=str(tmp_path / "unleash-cache"),
    )
    client.initialize_client()
    try:
        assert client.is_initialized
        snap = snapshot.get_snapshot(env.id)
        enabled = 0
        for user, attributes in _contexts():
            ctx = {"userId": user, "properties": dict(attributes)}
            for key in [*BOOLEAN_FLAGS, "headline", "discount"]:
                expected = snap.evaluate(key, ctx)
                assert client.is_enabled(key, ctx) is expected.enabled, (key, ctx)
                variant = client.get_variant(key, ctx)
                assert variant["name"] == expected.variant, (key, ctx)
                if expected.payload is not None:
                    assert variant["payload"] == expected.payload
                enabled += expected.enabled
        assert enabled > 300

        # A change reaches the SDK on its next poll (new ETag after If-None-Match).
        services.flag_toggle(
            flag=Flag.objects.get(key="off"), environment=env, enabled=True, actor=None
        )
        deadline = time.monotonic() + 15
        while not client.is_enabled("off", {"userId": "u"}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.is_enabled("off", {"userId": "u"}) is True
    finally:
        client.destroy()
