"""The snapshot compiler: an Unleash client-API document -> a ``Snapshot`` of closures.

``compile_snapshot`` reads ``{"version": 2, "features": [...], "segments": [...]}``
(``GET /api/client/features``): segments and constraints become predicates
(``flags.engine.operators``), strategies their checks (``flags.engine.strategies``), each
strategy's reason is classified, variants get their pickers and dependencies their wrappers
(``flags.engine.evaluate``). Constraints are ANDed per strategy, together with the constraints
of every referenced segment. A strategy that references a missing segment is false; an empty
segment is true. A flag that is enabled and has no strategies is on.

``apply_delta`` applies Unleash delta-API events to such a document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flags.engine.context import as_str
from flags.engine.evaluate import (
    DEFAULT,
    DISABLED,
    DISABLED_VARIANT,
    SPLIT,
    STATIC,
    TARGETING_MATCH,
    CompiledFlag,
    EvalFn,
    Evaluation,
    Rule,
    Snapshot,
    VariantSet,
    make_flag,
    variant_picker,
    variant_set,
    with_dependencies,
)
from flags.engine.operators import Predicate, compile_constraint
from flags.engine.strategies import compile_activation


def _compile_segments(
    segments: Iterable[Mapping[str, Any]],
) -> dict[Any, tuple[Predicate, ...] | bool]:
    """Segment id -> its compiled constraints (False when one can never match)."""
    compiled: dict[Any, tuple[Predicate, ...] | bool] = {}
    for segment in segments or ():
        checks: list[Predicate] = []
        never = False
        for constraint in segment.get("constraints") or ():
            c = compile_constraint(constraint)
            if c is False:
                never = True
                break
            if c is not True:
                checks.append(c)
        compiled[segment.get("id")] = False if never else tuple(checks)
        # Ids may arrive as numbers or strings depending on the producer.
        compiled[as_str(segment.get("id"))] = compiled[segment.get("id")]
    return compiled


def _compile_flag(
    feature: Mapping[str, Any], segments: Mapping[Any, tuple[Predicate, ...] | bool]
) -> CompiledFlag:
    key = as_str(feature.get("name"))
    dependencies = [d for d in feature.get("dependencies") or () if isinstance(d, Mapping)]
    default = Evaluation(key, False, DISABLED_VARIANT, None, False, DEFAULT, None, True)
    if not feature.get("enabled"):
        off = Evaluation(key, False, DISABLED_VARIANT, None, False, DISABLED, None, True)
        return CompiledFlag(key, False, lambda ctx: off, lambda ctx: off, dependencies)

    feature_vset = variant_set(feature.get("variants") or (), with_overrides=True)
    feature_stickiness = "default"
    if feature_vset.variants:
        feature_stickiness = as_str(feature_vset.variants[0].get("stickiness") or "default")

    full: list[Rule] = []
    bool_rules: list[Rule] = []
    strategies = feature.get("strategies") or []
    if not strategies:
        on = Evaluation(key, True, DISABLED_VARIANT, None, False, STATIC, None, True)
        full.append(((), _feature_variant_result(key, feature_vset, feature_stickiness, on), None))
        bool_rules.append(((), on, None))

    for index, strategy in enumerate(strategies):
        params = strategy.get("parameters") or {}
        checks: list[Predicate] = []
        never = False
        constraints = list(strategy.get("constraints") or ())
        for constraint in constraints:
            c = compile_constraint(constraint)
            if c is False:
                never = True
            elif c is not True:
                checks.append(c)
        segment_ids = list(strategy.get("segments") or ())
        for segment_id in segment_ids:
            seg = segments.get(segment_id, segments.get(as_str(segment_id)))
            if seg is None or seg is False:
                never = True
            elif seg is not True:
                checks.extend(seg)
        activation = compile_activation(key, strategy.get("name"), params)
        if activation.check is False or never:
            continue
        rollout = None
        if activation.check is not True:
            checks.append(activation.check)  # after constraints: hashing is the costliest
            rollout = activation.rollout  # that last check, for make_flag to inline

        if activation.split:
            reason = SPLIT
        elif constraints or segment_ids or activation.targeting:
            reason = TARGETING_MATCH
        else:
            reason = STATIC
        plain = Evaluation(key, True, DISABLED_VARIANT, None, False, reason, index, True)
        strategy_vset = variant_set(strategy.get("variants") or (), with_overrides=False)
        result: Evaluation | EvalFn
        if strategy_vset.total > 0:
            result = variant_picker(
                key,
                strategy_vset,
                as_str(params.get("groupId") or key),
                as_str(params.get("stickiness") or "default"),
                plain,
            )
        else:
            result = _feature_variant_result(key, feature_vset, feature_stickiness, plain)
        full.append((tuple(checks), result, rollout))
        bool_rules.append((tuple(checks), plain, rollout))

    return CompiledFlag(
        key, True, make_flag(full, default), make_flag(bool_rules, default), dependencies
    )


def _feature_variant_result(
    key: str, vset: VariantSet, stickiness: str, plain: Evaluation
) -> Evaluation | EvalFn:
    if vset.total <= 0 and not vset.overrides:
        return plain
    return variant_picker(key, vset, key, stickiness, plain)


def compile_snapshot(state: Mapping[str, Any]) -> Snapshot:
    """Compile an Unleash client-features document into a Snapshot (once per config version)."""
    segments = _compile_segments(state.get("segments") or ())
    flags: dict[str, CompiledFlag] = {}
    for feature in state.get("features") or ():
        flag = _compile_flag(feature, segments)
        flags[flag.key] = flag
    resolved = {key: with_dependencies(flag, flags) for key, flag in flags.items()}
    return Snapshot(resolved)


def apply_delta(
    state: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Apply Unleash delta-API events in order and return a client-features document.

    Events: ``hydration`` (replaces features and segments), ``feature-updated``,
    ``feature-removed`` (``featureName``), ``segment-updated``, ``segment-removed``
    (``segmentId``). Unknown event types are ignored, as Unleash SDKs do.
    """
    state = state or {}
    features: dict[str, Any] = {f["name"]: f for f in state.get("features") or ()}
    segments: dict[Any, Any] = {s["id"]: s for s in state.get("segments") or ()}
    for event in events:
        kind = event.get("type")
        if kind == "hydration":
            features = {f["name"]: f for f in event.get("features") or ()}
            segments = {s["id"]: s for s in event.get("segments") or ()}
        elif kind == "feature-updated":
            feature = event["feature"]
            features[feature["name"]] = feature
        elif kind == "feature-removed":
            features.pop(as_str(event.get("featureName")), None)
        elif kind == "segment-updated":
            segment = event["segment"]
            segments[segment["id"]] = segment
        elif kind == "segment-removed":
            segments.pop(event.get("segmentId"), None)
    return {
        "version": state.get("version", 2),
        "features": list(features.values()),
        "segments": list(segments.values()),
    }
