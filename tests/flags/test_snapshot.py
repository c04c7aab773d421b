"""Snapshots: built once per config version, re-checked through the cache, zero queries warm.

Also the client-state selector (format, constant query count) and SDK-key lookup caching.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from flags import engine, freshness, sdk_auth, services, snapshot
from flags.models import Environment, Flag, SdkKey
from flags.selectors import environment_client_state
from tests.flags.factories import (
    EnvironmentFactory,
    FlagFactory,
    FlagStateFactory,
    SdkKeyFactory,
    SegmentFactory,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch, settings) -> Clock:
    settings.FLAGS_SNAPSHOT_TTL = 0.5
    fake = Clock()
    monkeypatch.setattr(freshness, "_clock", fake)
    monkeypatch.setattr(sdk_auth, "_clock", fake)
    return fake


@pytest.fixture
def shared_cache(monkeypatch) -> None:
    """Behave as with Redis: the Django cache is shared by every process."""
    monkeypatch.setattr(freshness, "cache_is_shared", lambda: True)


@pytest.fixture
def env(db) -> Environment:
    env = EnvironmentFactory(key="production")
    FlagStateFactory(flag=FlagFactory(key="a"), environment=env, enabled=True)
    return env


def _bump_elsewhere(env: Environment) -> None:
    """What another process's service does: move the version and publish it, no local reset."""
    FlagStateFactory(flag=FlagFactory(key="b"), environment=env, enabled=True)
    Environment.objects.filter(pk=env.pk).update(config_version=F("config_version") + 1)
    if freshness.cache_is_shared():
        try:
            cache.incr(freshness.CHANGES_KEY)
        except ValueError:
            cache.set(freshness.CHANGES_KEY, 1, None)


# --- get_snapshot -----------------------------------------------------------------------------


def test_get_snapshot__second_call__same_object_without_queries(env, django_assert_num_queries):
    first = snapshot.get_snapshot(env.id)
    with django_assert_num_queries(0):
        assert snapshot.get_snapshot(env.id) is first
    assert "a" in first


def test_get_snapshot__cold_process__four_queries(env, django_assert_num_queries):
    # versions check, environment row, flags, segments
    with django_assert_num_queries(4):
        snapshot.get_snapshot(env.id)


def test_get_snapshot__new_process_with_warm_cache__no_query(
    env, shared_cache, django_assert_num_queries
):
    snapshot.get_snapshot(env.id)
    snapshot.invalidate_local()  # a new process: nothing local, the cache is shared
    with django_assert_num_queries(0):
        snap = snapshot.get_snapshot(env.id)
    assert "a" in snap


@pytest.mark.parametrize("shared", [False, True], ids=["embedded", "redis"])
def test_get_snapshot__change_in_other_process__seen_after_interval_only(
    env, clock, monkeypatch, shared
):
    monkeypatch.setattr(freshness, "cache_is_shared", lambda: shared)
    old = snapshot.get_snapshot(env.id)
    _bump_elsewhere(env)
    clock.now += 0.4
    assert snapshot.get_snapshot(env.id) is old
    clock.now += 0.2
    new = snapshot.get_snapshot(env.id)
    assert new is not old
    assert "b" in new


def test_get_snapshot__interval_passed_nothing_changed_with_redis__cache_check_only(
    env, clock, shared_cache, django_assert_num_queries
):
    cache.set(freshness.CHANGES_KEY, 7, None)
    first = snapshot.get_snapshot(env.id)
    clock.now += 5
    with django_assert_num_queries(0):
        assert snapshot.get_snapshot(env.id) is first


def test_get_snapshot__interval_passed_embedded__one_versions_query(
    env, clock, django_assert_num_queries
):
    first = snapshot.get_snapshot(env.id)
    clock.now += 5
    with django_assert_num_queries(1):
        assert snapshot.get_snapshot(env.id) is first
    with django_assert_num_queries(0):
        for _ in range(100):
            snapshot.get_snapshot(env.id)


def test_get_snapshot__change_counter_missing__one_query(
    env, clock, shared_cache, django_assert_num_queries
):
    first = snapshot.get_snapshot(env.id)
    cache.delete(freshness.CHANGES_KEY)
    clock.now += 5
    with django_assert_num_queries(1):
        assert snapshot.get_snapshot(env.id) is first


def test_get_snapshot__after_invalidate_local__never_goes_back(env, clock, shared_cache):
    _bump_elsewhere(env)
    current = snapshot.get_snapshot(env.id)
    assert "b" in current
    # A stale state document under the older version, and this process forgets its snapshots.
    cache.set(snapshot.STATE_KEY.format(env.pk, 1), '{"version":1,"features":[]}', 60)
    snapshot.invalidate_local()
    freshness.current().environments[env.pk] = 1  # as if a stale check had been read
    assert "b" in snapshot.get_snapshot(env.id)


def test_get_snapshot__read_inside_own_transaction__not_kept(env, django_assert_num_queries):
    from django.db import transaction

    with transaction.atomic():
        Flag.objects.filter(key="a").update(name="uncommitted")
        Environment.objects.filter(pk=env.pk).update(config_version=F("config_version") + 1)
        snapshot.get_snapshot(env.id)
    assert snapshot._LOCAL == {}
    env.refresh_from_db()
    assert cache.get(snapshot.STATE_KEY.format(env.pk, env.config_version)) is None


def test_get_snapshot__service_change__published_and_visible_at_once(
    env, shared_cache, django_capture_on_commit_callbacks
):
    assert snapshot.get_snapshot(env.id).is_enabled("a") is True
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_toggle(
            flag=Flag.objects.get(key="a"), environment=env, enabled=False, actor=None
        )
    assert cache.get(freshness.CHANGES_KEY) == 1
    assert snapshot.get_snapshot(env.id).is_enabled("a") is False


def test_get_snapshot__cache_down__falls_back_to_database(env, shared_cache, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "get", broken)
    monkeypatch.setattr(cache, "add", broken)
    monkeypatch.setattr(cache, "set", broken)
    monkeypatch.setattr(cache, "incr", broken)
    assert snapshot.get_snapshot(env.id).is_enabled("a") is True


def test_load__missing_environment__environment_not_found(db):
    with pytest.raises(snapshot.EnvironmentNotFound):
        snapshot.load(987654)


def test_load__etag__follows_content(env, django_capture_on_commit_callbacks):
    first = snapshot.load(env.id)
    with django_capture_on_commit_callbacks(execute=True):
        services.flag_toggle(
            flag=Flag.objects.get(key="a"), environment=env, enabled=False, actor=None
        )
    second = snapshot.load(env.id)
    assert first.etag != second.etag
    assert json.loads(second.body)["features"][0]["enabled"] is False


def test_compile_state__split_flags__need_targeting_key(db):
    state = {
        "features": [
            {
                "name": "user",
                "enabled": True,
                "strategies": [
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": "30", "stickiness": "userId"},
                    }
                ],
            },
            {
                "name": "default",
                "enabled": True,
                "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "30"}}],
            },
            {
                "name": "full",
                "enabled": True,
                "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "100"}}],
            },
            {
                "name": "random",
                "enabled": True,
                "strategies": [
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": "30", "stickiness": "random"},
                    }
                ],
            },
            {
                "name": "variants",
                "enabled": True,
                "strategies": [],
                "variants": [{"name": "a", "weight": 500}, {"name": "b", "weight": 500}],
            },
            {
                "name": "off",
                "enabled": False,
                "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "30"}}],
            },
        ]
    }
    compiled = snapshot.compile_state(state, environment_id=1, version=1)
    assert dict(compiled.needs_targeting_key) == {"user": True, "default": False, "variants": False}


# --- environment_client_state -----------------------------------------------------------------


def test_environment_client_state__unleash_format(db):
    env = EnvironmentFactory(key="production")
    segment = SegmentFactory(
        name="Beta", constraints=[{"contextName": "userId", "operator": "IN", "values": ["a"]}]
    )
    flag = FlagFactory(
        key="checkout",
        description="New checkout",
        type=Flag.Type.STRING,
        variants=[{"name": "x", "weight": 1000, "payload": {"type": "string", "value": "X"}}],
        lifecycle=Flag.Lifecycle.STALE,
        tags=["shop"],
    )
    FlagStateFactory(
        flag=flag,
        environment=env,
        enabled=True,
        rules=[
            {
                "name": "default",
                "parameters": {},
                "constraints": [],
                "segments": [segment.id],
                "variants": [],
            },
            {
                "name": "default",
                "parameters": {},
                "constraints": [],
                "segments": [],
                "variants": [],
                "disabled": True,
            },
        ],
    )
    state = environment_client_state(env)
    assert state["version"] == 2
    assert state["segments"] == [
        {"id": segment.id, "name": "Beta", "constraints": segment.constraints}
    ]
    (feature,) = state["features"]
    assert feature["name"] == "checkout"
    assert feature["type"] == "release"
    assert feature["enabled"] is True
    assert feature["stale"] is True
    assert feature["impressionData"] is False
    assert feature["variants"] == flag.variants
    assert feature["dependencies"] == []
    assert feature["rollcall"] == {
        "valueType": "string",
        "displayName": flag.name,
        "tags": ["shop"],
        "lifecycle": "stale",
    }
    (strategy,) = feature["strategies"]  # the disabled rule is not served
    assert set(strategy) == {"id", "name", "parameters", "constraints", "segments", "variants"}
    assert strategy["segments"] == [segment.id]
    exported = environment_client_state(env, for_export=True)
    assert [s.get("disabled", False) for s in exported["features"][0]["strategies"]] == [
        False,
        True,
    ]


def test_environment_client_state__archived_and_stateless_flags(db):
    env = EnvironmentFactory(key="production")
    FlagStateFactory(
        flag=FlagFactory(key="gone", lifecycle=Flag.Lifecycle.ARCHIVED), environment=env
    )
    FlagFactory(key="no-state-yet")
    state = environment_client_state(env)
    assert [(f["name"], f["enabled"]) for f in state["features"]] == [("no-state-yet", False)]


@pytest.mark.parametrize("count", [1, 25])
def test_environment_client_state__constant_queries(db, django_assert_num_queries, count):
    env = EnvironmentFactory(key="production")
    other = EnvironmentFactory(key="staging")
    for i in range(count):
        flag = FlagFactory(key=f"f{i}")
        FlagStateFactory(flag=flag, environment=env, rules=[{"name": "default", "segments": []}])
        FlagStateFactory(flag=flag, environment=other, enabled=False)
        SegmentFactory()
    with django_assert_num_queries(2):
        state = environment_client_state(env)
    assert len(state["features"]) == count
    assert all(f["enabled"] for f in state["features"])


# --- SDK-key lookups ---------------------------------------------------------------------------


def test_sdk_auth_lookup__warm__no_query(db, shared_cache, django_assert_num_queries):
    key = SdkKeyFactory()
    assert sdk_auth.lookup(sdk_auth.hash_key(key.raw)).environment_id == key.environment_id
    with django_assert_num_queries(0):
        sdk_auth.lookup(sdk_auth.hash_key(key.raw))
    sdk_auth.clear_local()  # another process: served from the cache
    with django_assert_num_queries(0):
        assert sdk_auth.lookup(sdk_auth.hash_key(key.raw)) is not None


def test_sdk_auth_lookup__embedded_warm__no_query_until_interval(
    db, clock, django_assert_num_queries
):
    key = SdkKeyFactory()
    key_hash = sdk_auth.hash_key(key.raw)
    assert sdk_auth.lookup(key_hash) is not None
    clock.now += 5
    with django_assert_num_queries(1):  # the versions check; the key stays known
        for _ in range(50):
            assert sdk_auth.lookup(key_hash) is not None


@pytest.mark.parametrize("shared", [False, True], ids=["embedded", "redis"])
def test_sdk_auth_lookup__revoked_in_other_process__refused_after_interval(
    db, clock, monkeypatch, shared
):
    monkeypatch.setattr(freshness, "cache_is_shared", lambda: shared)
    key = SdkKeyFactory()
    key_hash = sdk_auth.hash_key(key.raw)
    assert sdk_auth.lookup(key_hash) is not None
    # Another process revokes it (its own on-commit hook runs there, not here).
    SdkKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    if shared:
        cache.set(sdk_auth.CACHE_KEY.format(key_hash), "-", 300)
        cache.set(freshness.CHANGES_KEY, 99, None)
    clock.now += 0.4
    assert sdk_auth.lookup(key_hash) is not None
    clock.now += 0.2
    assert sdk_auth.lookup(key_hash) is None


def test_sdk_key_create__raw_key__hash_stored_and_shaped(db, admin_user_role):
    env = EnvironmentFactory(key="production")
    sdk_key, raw = services.sdk_key_create(environment=env, name="Checkout", actor=admin_user_role)
    assert raw.startswith("rc_production_")
    assert len(raw.rsplit("_", 1)[1]) == 32
    assert sdk_key.key_hash == sdk_auth.hash_key(raw)
    assert raw not in (sdk_key.prefix + "x")  # the secret itself is not stored
    assert sdk_key.created_by == admin_user_role
    assert sdk_auth.lookup(sdk_key.key_hash).environment_key == "production"


def test_sdk_key_revoke__twice__keeps_first_time(db):
    key = SdkKeyFactory()
    first = services.sdk_key_revoke(sdk_key=key, actor=None).revoked_at
    assert first is not None
    assert services.sdk_key_revoke(sdk_key=key, actor=None).revoked_at == first


def test_environment_client_state__semver_or_equal__rewritten_for_unleash_sdks_same_answers(db):
    env = EnvironmentFactory(key="production")
    rules = [
        {
            "name": "flexibleRollout",
            "parameters": {"rollout": "60"},
            "constraints": [
                {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "2.0.0"},
                {
                    "contextName": "osVersion",
                    "operator": "SEMVER_LTE",
                    "value": "14.1.0",
                    "inverted": True,
                },
                {"contextName": "plan", "operator": "IN", "values": ["pro"]},
            ],
        }
    ]
    FlagStateFactory(flag=FlagFactory(key="app"), environment=env, rules=rules)
    served = environment_client_state(env)
    strategies = served["features"][0]["strategies"]
    operators = {c["operator"] for s in strategies for c in s["constraints"]}
    assert operators == {"SEMVER_GT", "SEMVER_EQ", "SEMVER_LT", "IN"}
    assert len(strategies) == 2
    assert strategies[0]["parameters"] == {
        "rollout": "60",
        "groupId": "app",
        "stickiness": "default",
    }
    assert len({s["id"] for s in strategies}) == 2
    exported = environment_client_state(env, for_export=True)
    assert exported["features"][0]["strategies"][0]["constraints"] == rules[0]["constraints"]
    original = engine.compile_snapshot(exported)
    rewritten = engine.compile_snapshot(served)
    versions = ["1.9.0", "2.0.0", "2.0.1", "14.1.0", "14.0.9", "14.2.0", "", "x"]
    for i in range(400):
        ctx = {
            "userId": f"u{i}",
            "properties": {
                "appVersion": versions[i % 8],
                "osVersion": versions[(i // 8) % 8],
                "plan": "pro",
            },
        }
        assert rewritten.is_enabled("app", ctx) == original.is_enabled("app", ctx), ctx


def test_get_snapshot__invalidated_while_refreshing__stale_result_not_kept(env, monkeypatch):
    real_compile = snapshot._compile

    def compile_then_commit_elsewhere(environment_id, version):
        compiled = real_compile(environment_id, version)
        _bump_elsewhere(env)  # another thread of this process commits a change meanwhile...
        snapshot.publish_versions()  # ...and its on-commit hook runs
        snapshot.invalidate_local()
        return compiled

    monkeypatch.setattr(snapshot, "_compile", compile_then_commit_elsewhere)
    assert "b" not in snapshot.get_snapshot(env.id)
    monkeypatch.setattr(snapshot, "_compile", real_compile)
    assert "b" in snapshot.get_snapshot(env.id)


def test_load_latest__flag_created_in_other_process_within_interval__found(env, clock):
    snapshot.get_snapshot(env.id)
    _bump_elsewhere(env)  # creates "b" elsewhere
    assert "b" not in snapshot.load(env.id).snapshot  # within the interval: not checked yet
    assert "b" in snapshot.load_latest(env.id).snapshot
