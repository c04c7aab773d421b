"""Unit tests for flags.engine (pure: no Django, no database)."""

from __future__ import annotations

import datetime as dt
import itertools
import socket
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from UnleashClient.utils import normalized_hash

from flags.engine import (
    DEFAULT,
    DISABLED,
    SPLIT,
    STATIC,
    TARGETING_MATCH,
    Evaluation,
    InvalidContext,
    Snapshot,
    apply_delta,
    bucket,
    compile_snapshot,
    context_from_ofrep,
    translate_rust_regex,
    variant_bucket,
)

# --------------------------------------------------------------------------------------------
# Builders


def feature(name: str = "f", *strategies: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "enabled": True, "strategies": list(strategies), **extra}


def strategy(name: str = "default", *constraints: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "parameters": {}, "constraints": list(constraints), **extra}


def rollout(percentage: int | str, stickiness: str = "default", **extra: Any) -> dict[str, Any]:
    params = {"rollout": str(percentage), "stickiness": stickiness, **extra.pop("params", {})}
    return {"name": "flexibleRollout", "parameters": params, "constraints": [], **extra}


def constraint(field: str, operator: str, *values: str, **extra: Any) -> dict[str, Any]:
    return {"contextName": field, "operator": operator, "values": list(values), **extra}


def single(field: str, operator: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"contextName": field, "operator": operator, "value": value, **extra}


def snap(*features: dict[str, Any], segments: list[dict[str, Any]] | None = None) -> Snapshot:
    return compile_snapshot({"version": 2, "features": list(features), "segments": segments or []})


def on(c: dict[str, Any], context: dict[str, Any] | None = None) -> bool:
    """Whether a default strategy with the one constraint `c` is on for `context`."""
    return snap(feature("f", strategy("default", c))).is_enabled("f", context or {})


def variants(*weights: int, stickiness: str = "default") -> list[dict[str, Any]]:
    return [
        {
            "name": f"v{i}",
            "weight": w,
            "stickiness": stickiness,
            "payload": {"type": "string", "value": f"p{i}"},
        }
        for i, w in enumerate(weights)
    ]


# --------------------------------------------------------------------------------------------
# Bucketing


def test_bucket__known_unleash_values() -> None:
    # Values every Unleash SDK agrees on (murmur3 x86_32, seed 0, "<group>:<id>" % 100 + 1).
    assert bucket("gr1", "123") == 73
    assert bucket("AB12A", "122") == 23
    assert bucket("AB12A", "155") == 100
    assert bucket("Feature.flexibleRollout.10", "174") == 10
    # The key is hashed as UTF-8.
    assert bucket("Hellø", "wørld") == 1


def test_variant_bucket__known_values_with_variant_seed() -> None:
    assert variant_bucket("gr1", "123", 1000) == 796
    assert variant_bucket("checkout", "user-1", 1000) == 663
    assert variant_bucket("gr1", "123", 1) == 1


@settings(max_examples=200, deadline=None)
@given(group=st.text(min_size=1, max_size=24), value=st.text(min_size=1, max_size=40))
def test_bucket__agrees_with_unleash_python_sdk(group: str, value: str) -> None:
    assert bucket(group, value) == normalized_hash(value, group)
    assert variant_bucket(group, value, 1000) == normalized_hash(value, group, 1000, 86028157)


def test_rollout__bucket_equal_to_percentage__is_on() -> None:
    assert bucket("boundary", "u29") == 50
    flag_at = {p: snap(feature("boundary", rollout(p))) for p in (49, 50)}
    assert flag_at[50].is_enabled("boundary", {"userId": "u29"}) is True
    assert flag_at[49].is_enabled("boundary", {"userId": "u29"}) is False


def test_rollout__zero_percent__is_off_even_in_bucket_one() -> None:
    assert bucket("boundary", "u110") == 1
    assert snap(feature("boundary", rollout(0))).is_enabled("boundary", {"userId": "u110"}) is False
    assert snap(feature("boundary", rollout(1))).is_enabled("boundary", {"userId": "u110"}) is True


def test_rollout__bucket_100_needs_100_percent() -> None:
    assert bucket("boundary", "u100") == 100
    assert (
        snap(feature("boundary", rollout(99))).is_enabled("boundary", {"userId": "u100"}) is False
    )
    assert snap(feature("boundary", rollout(100))).is_enabled("boundary", {"userId": "u100"})


def test_rollout__group_id_parameter_overrides_flag_key() -> None:
    flag = feature("other-flag", rollout(50, params={"groupId": "boundary"}))
    assert snap(flag).is_enabled("other-flag", {"userId": "u29"}) is True
    assert bucket("other-flag", "u29") > 50  # so the flag key alone would say off
    assert (
        snap(feature("other-flag", rollout(50))).is_enabled("other-flag", {"userId": "u29"})
        is False
    )


def test_rollout__default_stickiness_falls_back_to_session_id() -> None:
    s = snap(feature("boundary", rollout(50)))
    assert s.is_enabled("boundary", {"sessionId": "u29"}) is True
    assert s.is_enabled("boundary", {"sessionId": "u110", "userId": "u100"}) is False


def test_rollout__named_stickiness_missing__is_off_even_at_100() -> None:
    s = snap(feature("f", rollout(100, stickiness="tenant")))
    assert s.is_enabled("f", {"userId": "u1"}) is False
    assert s.is_enabled("f", {"properties": {"tenant": "acme"}}) is True


def test_rollout__no_stickiness_value__is_random() -> None:
    half = snap(feature("f", rollout(50)))
    results = Counter(half.is_enabled("f", {}) for _ in range(2000))
    assert 800 < results[True] < 1200
    assert snap(feature("f", rollout(100))).is_enabled("f", {}) is True
    assert snap(feature("f", rollout(0))).is_enabled("f", {}) is False


def test_gradual_rollout_user_id__uses_group_id_and_percentage() -> None:
    s = snap(
        feature(
            "f",
            {
                "name": "gradualRolloutUserId",
                "parameters": {"percentage": "50", "groupId": "boundary"},
            },
        )
    )
    assert s.is_enabled("f", {"userId": "u29"}) is True
    assert s.is_enabled("f", {"userId": "u100"}) is False
    assert s.is_enabled("f", {"sessionId": "u29"}) is False


@settings(max_examples=300, deadline=None)
@given(
    user=st.text(min_size=1, max_size=30),
    group=st.text(min_size=1, max_size=20),
    low=st.integers(0, 100),
    high=st.integers(0, 100),
)
def test_raising_the_percentage_never_turns_anyone_off(
    user: str, group: str, low: int, high: int
) -> None:
    low, high = sorted((low, high))
    before = snap(feature("f", rollout(low, stickiness="userId", params={"groupId": group})))
    after = snap(feature("f", rollout(high, stickiness="userId", params={"groupId": group})))
    if before.is_enabled("f", {"userId": user}):
        assert after.is_enabled("f", {"userId": user})
    # And the cut-off is exactly the bucket.
    assert after.is_enabled("f", {"userId": user}) is (high > 0 and bucket(group, user) <= high)


# --------------------------------------------------------------------------------------------
# Variants


def test_variants__distribution_follows_weights() -> None:
    s = snap(feature("f", rollout(100), variants=variants(200, 300, 500)))
    counts = Counter(s.evaluate("f", {"userId": f"user-{i}"}).variant for i in range(30_000))
    shares = {name: n / 30_000 for name, n in counts.items()}
    assert shares.keys() == {"v0", "v1", "v2"}
    assert shares["v0"] == pytest.approx(0.2, abs=0.015)
    assert shares["v1"] == pytest.approx(0.3, abs=0.015)
    assert shares["v2"] == pytest.approx(0.5, abs=0.015)


def test_variants__are_sticky_and_follow_unleash_hash() -> None:
    s = snap(feature("f", rollout(100), variants=variants(1, 1, 2)))
    for i in range(200):
        user = f"user-{i}"
        target = variant_bucket("f", user, 4)
        expected = "v0" if target == 1 else "v1" if target == 2 else "v2"
        assert s.evaluate("f", {"userId": user}).variant == expected
        assert s.evaluate("f", {"userId": user}) == s.evaluate("f", {"userId": user})


def test_variants__zero_weight_variant_is_never_hashed_to() -> None:
    s = snap(feature("f", rollout(100), variants=variants(0, 1, 1)))
    names = {s.evaluate("f", {"userId": f"u{i}"}).variant for i in range(500)}
    assert names == {"v1", "v2"}


def test_variants__override_wins_over_hash_and_is_targeting() -> None:
    vs = variants(1, 1)
    vs[0]["overrides"] = [{"contextName": "userId", "values": ["vip"]}]
    s = snap(feature("f", strategy("default"), variants=vs))
    assert variant_bucket("f", "vip", 2) == 2  # hashing alone would give v1
    result = s.evaluate("f", {"userId": "vip"})
    assert (result.variant, result.reason) == ("v0", TARGETING_MATCH)


def test_variants__custom_stickiness_missing_falls_back_to_random() -> None:
    s = snap(feature("f", strategy("default"), variants=variants(1, 1, stickiness="tenant")))
    names = Counter(s.evaluate("f", {"userId": "same"}).variant for _ in range(400))
    assert set(names) == {"v0", "v1"}


def test_strategy_variants__take_group_and_stickiness_from_the_strategy() -> None:
    strat = rollout(100, stickiness="tenant", params={"groupId": "grp"})
    strat["variants"] = variants(1, 1)
    s = snap(feature("f", strat))
    for tenant in ("a", "b", "c", "d", "e"):
        expected = "v0" if variant_bucket("grp", tenant, 2) == 1 else "v1"
        assert s.evaluate("f", {"properties": {"tenant": tenant}}).variant == expected


def test_get_variant__unleash_shape() -> None:
    s = snap(
        feature("with", strategy("default"), variants=variants(1)),
        feature("without", strategy("default")),
    )
    assert s.get_variant("with", {}) == {
        "name": "v0",
        "payload": {"type": "string", "value": "p0"},
        "enabled": True,
        "feature_enabled": True,
    }
    assert s.get_variant("without", {}) == {
        "name": "disabled",
        "enabled": False,
        "feature_enabled": True,
    }
    assert s.get_variant("missing") == {
        "name": "disabled",
        "enabled": False,
        "feature_enabled": False,
    }


# --------------------------------------------------------------------------------------------
# Reasons


def test_reason__unknown_flag__not_found() -> None:
    result = snap().evaluate("nope", {})
    assert result == Evaluation("nope", False, "disabled", None, False, DEFAULT, None, False)


def test_reason__disabled_flag() -> None:
    s = snap({"name": "f", "enabled": False, "strategies": [strategy("default")]})
    assert s.evaluate("f").reason == DISABLED
    assert s.evaluate("f").found is True


def test_reason__no_strategy_matched__default() -> None:
    s = snap(feature("f", strategy("userWithId", parameters={"userIds": "a"})))
    result = s.evaluate("f", {"userId": "b"})
    assert (result.enabled, result.reason, result.rule_index) == (False, DEFAULT, None)


@pytest.mark.parametrize(
    ("strategies", "context", "reason", "index"),
    [
        ([strategy("default")], {}, STATIC, 0),
        ([rollout(100)], {}, STATIC, 0),
        ([], {}, STATIC, None),
        ([rollout(50)], {"userId": "u29"}, SPLIT, 0),
        ([{"name": "gradualRolloutRandom", "parameters": {"percentage": "99"}}], {}, SPLIT, 0),
        (
            [strategy("default", constraint("environment", "IN", "prod"))],
            {"environment": "prod"},
            TARGETING_MATCH,
            0,
        ),
        (
            [strategy("userWithId", parameters={"userIds": "a, b"})],
            {"userId": "b"},
            TARGETING_MATCH,
            0,
        ),
        ([strategy("default", segments=[1])], {"appName": "web"}, TARGETING_MATCH, 0),
        # A percentage split beats targeting.
        (
            [dict(rollout(50), constraints=[constraint("appName", "IN", "web")])],
            {"appName": "web", "userId": "u29"},
            SPLIT,
            0,
        ),
        # The index is the position in the strategies list.
        (
            [strategy("userWithId", parameters={"userIds": "x"}), strategy("default")],
            {"userId": "y"},
            STATIC,
            1,
        ),
    ],
)
def test_reason__matched_strategy(
    strategies: list[dict[str, Any]], context: dict[str, Any], reason: str, index: int | None
) -> None:
    segment = {"id": 1, "constraints": [constraint("appName", "IN", "web")]}
    s = snap(feature("boundary", *strategies), segments=[segment])
    # Random rollouts may say off on a given call; the reason is about the calls that say on.
    results = [s.evaluate("boundary", context) for _ in range(50)]
    result = next(r for r in results if r.enabled)
    assert (result.reason, result.rule_index) == (reason, index)


def test_reason__variant_split_by_hash_is_split() -> None:
    s = snap(feature("f", strategy("default"), variants=variants(1, 1)))
    assert s.evaluate("f", {"userId": "u"}).reason == SPLIT
    fixed = snap(feature("f", strategy("default"), variants=variants(1, 0)))
    assert fixed.evaluate("f", {"userId": "u"}).reason == STATIC


def test_evaluations_are_prebuilt_and_shared() -> None:
    s = snap(feature("f", strategy("default", constraint("appName", "IN", "web"))))
    assert s.evaluate("f", {"appName": "web"}) is s.evaluate("f", {"appName": "web"})


# --------------------------------------------------------------------------------------------
# Context mapping


def test_context_from_ofrep__maps_targeting_key_and_properties() -> None:
    ctx = context_from_ofrep(
        {
            "targetingKey": "user-1",
            "sessionId": "s-1",
            "remoteAddress": "10.0.0.1",
            "appName": "web",
            "environment": "production",
            "currentTime": "2024-05-01T10:00:00Z",
            "email": "a@example.com",
            "beta": True,
            "optOut": False,
            "age": 42,
            "ratio": 0.5,
            "nothing": None,
        }
    )
    assert ctx == {
        "userId": "user-1",
        "sessionId": "s-1",
        "remoteAddress": "10.0.0.1",
        "appName": "web",
        "environment": "production",
        "currentTime": "2024-05-01T10:00:00Z",
        "properties": {
            "email": "a@example.com",
            "beta": "true",
            "optOut": "false",
            "age": "42",
            "ratio": "0.5",
        },
    }


def test_context_from_ofrep__targeting_key_wins_over_user_id() -> None:
    assert context_from_ofrep({"userId": "a", "targetingKey": "b"}) == {"userId": "b"}
    assert context_from_ofrep({"userId": 7}) == {"userId": "7"}
    assert context_from_ofrep(None) == {}


@pytest.mark.parametrize(
    "ctx",
    [
        {"targetingKey": "\ud800"},
        {"targetingKey": "user-\udfff"},
        {"userId": "\udbffa"},
        {"sessionId": "\ud800"},
        {"remoteAddress": "\udc00"},
        {"currentTime": "2024-01-01\ud800"},
        {"plan": "pro\ud83d"},
        {"\ud800": "x"},
    ],
)
def test_context_from_ofrep__lone_surrogate_name_or_value__invalid_context(ctx) -> None:
    with pytest.raises(InvalidContext, match="surrogate"):
        context_from_ofrep(ctx)


def test_context_from_ofrep__non_ascii_text_and_nested_values__accepted() -> None:
    ctx = context_from_ofrep(
        {"targetingKey": "Åse-😀", "ville": "Zürich", "tags": ["\ud800"], "n": {"k": "é"}}
    )
    assert ctx["userId"] == "Åse-😀"
    assert ctx["properties"]["ville"] == "Zürich"
    # Objects and lists are stringified as ASCII JSON: an escaped surrogate is harmless text.
    assert ctx["properties"]["tags"] == '["\\ud800"]'
    assert ctx["properties"]["n"] == '{"k":"\\u00e9"}'


def test_context_from_ofrep__validated_context__hashes_like_unleash() -> None:
    snapshot = snap(feature("f", rollout(50, "userId", params={"groupId": "g"})))
    for user in ("Åse", "😀", "plain"):
        expected = normalized_hash(user, "g") <= 50
        assert snapshot.is_enabled("f", context_from_ofrep({"targetingKey": user})) is expected


def test_context_from_ofrep__values_work_with_operators() -> None:
    ctx = context_from_ofrep({"targetingKey": "u", "age": 42, "beta": True})
    assert on(single("age", "NUM_GT", "40"), ctx) is True
    assert on(constraint("beta", "IN", "true"), ctx) is True


# --------------------------------------------------------------------------------------------
# Constraint operators


def test_in__non_string_context_values_are_stringified() -> None:
    assert on(constraint("n", "IN", "5"), {"properties": {"n": 5}}) is True
    assert on(constraint("flag", "IN", "true"), {"properties": {"flag": True}}) is True
    assert on(constraint("userId", "IN", "5"), {"userId": 5}) is True


def test_in__is_case_sensitive_and_not_in_is_its_negation() -> None:
    assert on(constraint("appName", "IN", "Web"), {"appName": "web"}) is False
    assert on(constraint("appName", "NOT_IN", "Web"), {"appName": "web"}) is True
    assert on(constraint("appName", "NOT_IN", "web"), {"appName": "web"}) is False


def test_inverted__applies_to_an_absent_value() -> None:
    assert on(constraint("email", "STR_CONTAINS", "@acme", inverted=True), {}) is True
    assert on(constraint("email", "STR_CONTAINS", "@acme"), {}) is False


def test_str_operators__case_insensitive() -> None:
    ctx = {"properties": {"email": "Ann@ACME.com"}}
    assert on(constraint("email", "STR_ENDS_WITH", "@acme.com"), ctx) is False
    assert on(constraint("email", "STR_ENDS_WITH", "@acme.com", caseInsensitive=True), ctx)
    assert on(constraint("email", "STR_STARTS_WITH", "ann", caseInsensitive=True), ctx)
    assert on(constraint("email", "STR_CONTAINS", "x", "acme", caseInsensitive=True), ctx)


@pytest.mark.parametrize(
    ("operator", "rule", "value", "expected"),
    [
        ("NUM_EQ", "12", "12.0", True),
        ("NUM_GT", "12", "12.5", True),
        ("NUM_GT", "12", "abc", False),
        ("NUM_GT", "12", "1_000", False),
        ("NUM_LTE", "-1.5", "-2", True),
        ("NUM_GTE", "1e3", "1000", True),
    ],
)
def test_num_operators(operator: str, rule: str, value: str, expected: bool) -> None:
    assert on(single("n", operator, rule), {"properties": {"n": value}}) is expected


def test_num__invalid_rule_value_is_false_even_inverted() -> None:
    ctx = {"properties": {"n": "3"}}
    assert on(single("n", "NUM_GT", "three"), ctx) is False
    assert on(single("n", "NUM_GT", "three", inverted=True), ctx) is False


def test_num__invalid_context_value_inverted_is_true() -> None:
    assert on(single("n", "NUM_GT", "3", inverted=True), {"properties": {"n": "x"}}) is True


def test_unknown_operator_is_false_even_inverted() -> None:
    assert on(single("n", "NUM_BETWEEN", "3"), {"properties": {"n": "3"}}) is False
    assert on(single("n", "NUM_BETWEEN", "3", inverted=True), {"properties": {"n": "3"}}) is False


def test_date__defaults_to_now_and_accepts_datetimes() -> None:
    assert on(single("currentTime", "DATE_AFTER", "2000-01-01T00:00:00Z")) is True
    assert on(single("currentTime", "DATE_BEFORE", "2000-01-01T00:00:00Z")) is False
    naive = dt.datetime(2022, 1, 29, 12, 59)  # naive = UTC
    rule = single("currentTime", "DATE_BEFORE", "2022-01-29T13:00:00.000Z")
    assert on(rule, {"currentTime": naive}) is True
    assert on(rule, {"currentTime": naive.replace(minute=0, hour=14)}) is False
    assert on(rule, {"currentTime": "not a date"}) is False


def test_date__on_a_custom_field_reads_that_field() -> None:
    rule = single("signupDate", "DATE_AFTER", "2024-01-01T00:00:00Z")
    assert on(rule, {"properties": {"signupDate": "2024-02-01T00:00:00Z"}}) is True
    assert on(rule, {"properties": {"signupDate": "2023-02-01T00:00:00Z"}}) is False
    assert on(rule, {}) is False


def test_semver__precedence_chain_from_the_semver_spec() -> None:
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    for lower, higher in itertools.pairwise(chain):
        assert on(single("v", "SEMVER_GT", lower), {"properties": {"v": higher}}), (lower, higher)
        assert on(single("v", "SEMVER_LT", higher), {"properties": {"v": lower}}), (lower, higher)
        assert not on(single("v", "SEMVER_GT", higher), {"properties": {"v": lower}})


@pytest.mark.parametrize("version", ["v1.2.3", "1.2", "01.2.3", "1.2.3-", "1.2.3-01", " 1.2.3"])
def test_semver__invalid_versions_are_false(version: str) -> None:
    assert on(single("v", "SEMVER_GTE", "0.0.1"), {"properties": {"v": version}}) is False
    assert on(single("v", "SEMVER_EQ", version), {"properties": {"v": "1.2.3"}}) is False


def test_semver__build_metadata_is_ignored() -> None:
    assert on(single("v", "SEMVER_EQ", "1.2.3"), {"properties": {"v": "1.2.3+build.5"}}) is True


def test_in_cidr__ipv4_ipv6_and_invalid() -> None:
    rule = constraint("remoteAddress", "IN_CIDR", "10.0.0.0/8", "bad", "2001:db8::/32")
    assert on(rule, {"remoteAddress": "10.1.2.3"}) is True
    assert on(rule, {"remoteAddress": "2001:db8::7"}) is True
    assert on(rule, {"remoteAddress": "11.0.0.1"}) is False
    assert on(rule, {"remoteAddress": "::ffff:b00:1"}) is False
    assert on(rule, {"remoteAddress": "nonsense"}) is False


def test_regex__case_insensitive_and_invalid() -> None:
    assert on(single("userId", "REGEX", "^ann"), {"userId": "ANNA"}) is False
    assert on(single("userId", "REGEX", "^ann", caseInsensitive=True), {"userId": "ANNA"}) is True
    assert on(single("userId", "REGEX", "(ann"), {"userId": "ann"}) is False
    assert on(single("userId", "REGEX", "(ann", inverted=True), {"userId": "x"}) is False


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^[[:alpha:]]+$", "AlphaBeta", True),
        ("^[[:alpha:]]+$", "Alpha1", False),
        ("^[[:^digit:]]+$", "abc", True),
        ("^[^[:digit:]x]$", "x", False),
        ("^(?i)abc$", "aBc", True),
        ("a(?i)b|c", "C", True),  # the flag reaches across the alternation
        ("x(?i:b)c", "xBC", False),  # but not out of its group
        ("^foo$", "foo\n", False),  # Rust's $ is the end of the text
        ("(?m)^foo$", "x\nfoo\ny", True),
        ("^a.b$", "a\nb", False),
        ("(?s)^a.b$", "a\nb", True),
        ("^[a-z&&[^aeiou]]+$", "rhythm", True),
        ("^[a-z&&[^aeiou]]+$", "vowel", False),
        ("^[a-z--[aeiou]]+$", "rhythm", True),
        ("^\\x{41}\\u0042$", "AB", True),
        ("(?x) ^ a b # comment\n c $", "abc", True),
        ("(?-u:\\w)+$", "é", False),
        ("\\w+$", "é", True),
        ("^\\d{3}$", "123", True),
        ("\\bcat\\b", "concatenate", False),
        ("^(?P<first>a)(?<second>b)$", "ab", True),
        ("^[]a]+$", "]a", True),
    ],
)
def test_translate_rust_regex__matches_like_rust(pattern: str, text: str, expected: bool) -> None:
    assert (translate_rust_regex(pattern).search(text) is not None) is expected


@pytest.mark.parametrize(
    "pattern",
    ["(?=a)", "(?<!a)b", "(a)\\1", "\\pL", "a{,3}", "a**", "(?i", "[a", "a)", "\\", "(?z)"],
)
def test_translate_rust_regex__rejects_what_rust_rejects(pattern: str) -> None:
    with pytest.raises(ValueError):
        translate_rust_regex(pattern)


# --------------------------------------------------------------------------------------------
# Strategies and segments


def test_segments__missing_is_false_and_empty_is_true() -> None:
    s = snap(
        feature("missing", strategy("default", segments=[404])),
        feature("empty", strategy("default", segments=[1])),
        feature("string-id", strategy("default", segments=["2"])),
        segments=[
            {"id": 1, "constraints": []},
            {"id": 2, "constraints": [constraint("appName", "IN", "web")]},
        ],
    )
    assert s.is_enabled("missing") is False
    assert s.is_enabled("empty") is True
    assert s.is_enabled("string-id", {"appName": "web"}) is True
    assert s.is_enabled("string-id", {"appName": "api"}) is False


def test_unknown_strategy_is_false_but_later_strategies_still_count() -> None:
    s = snap(
        feature("only", strategy("myCustomStrategy")),
        feature("then", strategy("myCustomStrategy"), strategy("default")),
    )
    assert s.is_enabled("only") is False
    assert s.evaluate("then").rule_index == 1


def test_remote_address__exact_and_cidr_entries() -> None:
    s = snap(
        feature("f", strategy("remoteAddress", parameters={"IPs": "1.2.3.4, bad, 10.0.0.0/8"}))
    )
    assert s.is_enabled("f", {"remoteAddress": "1.2.3.4"}) is True
    assert s.is_enabled("f", {"remoteAddress": "10.9.9.9"}) is True
    assert s.is_enabled("f", {"remoteAddress": "1.2.3.5"}) is False
    assert s.is_enabled("f", {}) is False


def test_application_hostname__context_property_then_server_host(monkeypatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Web-01")
    s = snap(
        feature("f", strategy("applicationHostname", parameters={"hostNames": "web-01,WEB-02"}))
    )
    assert s.is_enabled("f", {}) is True  # the server's own host name
    assert s.is_enabled("f", {"properties": {"hostname": "web-02"}}) is True
    assert s.is_enabled("f", {"properties": {"hostname": "db-01"}}) is False


# --------------------------------------------------------------------------------------------
# Dependencies


def test_dependencies__parent_sees_the_child_context() -> None:
    parent = feature("parent", strategy("default", constraint("environment", "IN", "prod")))
    child = feature("child", strategy("default"), dependencies=[{"feature": "parent"}])
    s = snap(parent, child)
    assert s.is_enabled("child", {"environment": "prod"}) is True
    result = s.evaluate("child", {"environment": "dev"})
    assert (result.enabled, result.reason) == (False, DEFAULT)


def test_dependencies__variant_and_disabled_expectations() -> None:
    parent = feature("parent", strategy("default"), variants=variants(1))
    s = snap(
        parent,
        feature(
            "wants-v0",
            strategy("default"),
            dependencies=[{"feature": "parent", "variants": ["v0"]}],
        ),
        feature(
            "wants-v9",
            strategy("default"),
            dependencies=[{"feature": "parent", "variants": ["v9"]}],
        ),
        feature(
            "wants-off", strategy("default"), dependencies=[{"feature": "parent", "enabled": False}]
        ),
    )
    assert s.is_enabled("wants-v0") is True
    assert s.is_enabled("wants-v9") is False
    assert s.is_enabled("wants-off") is False


def test_dependencies__cycles_and_chains_are_false_and_disabled_child_says_disabled() -> None:
    s = snap(
        feature("a", strategy("default"), dependencies=[{"feature": "b"}]),
        feature("b", strategy("default"), dependencies=[{"feature": "a"}]),
        feature("c", strategy("default"), dependencies=[{"feature": "a"}]),
        {"name": "off", "enabled": False, "strategies": [], "dependencies": [{"feature": "a"}]},
    )
    assert [s.is_enabled(k) for k in ("a", "b", "c")] == [False, False, False]
    assert s.evaluate("off").reason == DISABLED


# --------------------------------------------------------------------------------------------
# Snapshot API and delta format


def test_evaluate_all__every_flag_in_document_order() -> None:
    s = snap(feature("b", strategy("default")), {"name": "a", "enabled": False, "strategies": []})
    assert s.flag_keys == ("b", "a")
    everything = s.evaluate_all({"userId": "u"})
    assert list(everything) == ["b", "a"]
    assert everything["b"] == s.evaluate("b", {"userId": "u"})
    assert (everything["b"].enabled, everything["a"].enabled) == (True, False)


def test_apply_delta__events_in_order() -> None:
    seg = {"id": 1, "constraints": [constraint("appName", "IN", "web")]}
    state = apply_delta(
        None,
        [
            {
                "type": "hydration",
                "features": [feature("old", strategy("default"))],
                "segments": [],
            },
            {
                "type": "feature-updated",
                "feature": feature("new", strategy("default", segments=[1])),
            },
            {"type": "segment-updated", "segment": seg},
            {"type": "feature-removed", "featureName": "old"},
            {"type": "some-future-event"},
        ],
    )
    s = compile_snapshot(state)
    assert s.flag_keys == ("new",)
    assert s.is_enabled("new", {"appName": "web"}) is True
    removed = apply_delta(state, [{"type": "segment-removed", "segmentId": 1}])
    assert compile_snapshot(removed).is_enabled("new", {"appName": "web"}) is False
    # The input is not modified.
    assert [f["name"] for f in state["features"]] == ["new"]
    assert state["segments"] == [seg]


def test_rollout__group_id_with_lone_surrogate__hashed_as_replacement_character() -> None:
    # mmh3 would crash the process on the raw string: the compiler normalises it once.
    snapshot = snap(
        feature("f", rollout(50, "userId", params={"groupId": "g\ud800"})),
        feature(
            "v",
            rollout(100, "userId", params={"groupId": "g\udfff"}, variants=variants(1, 1)),
        ),
    )
    for user in ("u1", "u2", "u3", "u4"):
        expected = bucket("g\ufffd", user) <= 50
        assert snapshot.is_enabled("f", {"userId": user}) is expected
        assert snapshot.evaluate("v", {"userId": user}).variant in {"v0", "v1"}
