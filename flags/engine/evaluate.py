"""Evaluation at run time: results, bucketing, variants, rules, dependencies, ``Snapshot``.

Everything here builds or is the per-evaluation code path; ``flags.engine.compile`` decides
what to build from the document. Every possible ``Evaluation`` is built at compile time, so
evaluating allocates nothing in the steady state. Evaluations and their payload dicts are
shared between calls: treat them as read-only.

Bucketing (exactly Unleash's)
    rollout: ``mmh3.hash(f"{group_id}:{value}", seed=0, signed=False) % 100 + 1`` and on when
    ``percentage > 0 and bucket <= percentage``; group id defaults to the flag key.
    variants: the same hash with seed 86028157, ``% total_weight + 1``, then the first variant
    whose cumulative weight reaches the target (weight-0 variants are skipped).
    Rollout stickiness ``default`` is ``userId``, then ``sessionId``, then random; ``random`` is
    random; a named field that is missing makes the rollout false. Variant stickiness
    ``default`` is ``userId``, ``sessionId``, ``remoteAddress``, then random; a named field that
    is missing falls back to random (as Unleash SDKs do). Strategy variants take stickiness and
    group id from their strategy's parameters; feature variants use the first variant's
    ``stickiness`` and the flag key. Feature-variant ``overrides`` win over hashing (first
    matching variant in list order).

Dependencies
    ``dependencies: [{feature, enabled=True, variants=[]}]``: every parent must be satisfied.
    Parents are evaluated without side effects (this engine has none: no metrics, no
    impressions). A parent that itself has dependencies (transitive chains and cycles) or does
    not exist makes the child false, as in Unleash.

Reasons (OFREP)
    ``found`` is False for an unknown flag (``enabled`` False, reason ``DEFAULT``; callers
    answer FLAG_NOT_FOUND). Otherwise:

    - ``DISABLED``: the flag is disabled in this environment.
    - ``DEFAULT``: the flag is enabled but no strategy matched (or a dependency failed).
    - ``SPLIT``: the matched strategy rolls out to a percentage below 100 (hashed or random),
      or the variant was chosen by hashing among two or more weighted variants.
    - ``TARGETING_MATCH``: the matched strategy has constraints or segments or is a targeting
      strategy (``userWithId``, ``remoteAddress``, ``applicationHostname``), or a variant
      override matched.
    - ``STATIC``: the matched strategy is unconditional (``default``, a 100% rollout with no
      constraints, or no strategies at all) and any variant was fixed.

    SPLIT takes precedence over TARGETING_MATCH, which takes precedence over STATIC.
    ``rule_index`` is the index of the matched strategy in the flag's ``strategies`` list
    (``None`` when nothing matched or the flag has no strategies).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from types import CodeType
from typing import Any, NamedTuple, cast

import mmh3

from flags.engine.context import EMPTY, TOP_LEVEL_FIELDS, Context, as_str, getter
from flags.engine.operators import Compiled, Predicate, parse_percentage

STATIC = "STATIC"
TARGETING_MATCH = "TARGETING_MATCH"
SPLIT = "SPLIT"
DISABLED = "DISABLED"
DEFAULT = "DEFAULT"
REASONS = (STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT)
_REASON_RANK = {STATIC: 0, TARGETING_MATCH: 1, SPLIT: 2}

DISABLED_VARIANT = "disabled"
ROLLOUT_SEED = 0
VARIANT_SEED = 86028157

_hash = mmh3.hash
_random = random.random


class Evaluation(NamedTuple):
    """The outcome of evaluating one flag for one context (immutable, shared)."""

    key: str
    enabled: bool
    #: Unleash variant name; ``"disabled"`` when no variant applies.
    variant: str
    #: The variant's payload ``{"type": ..., "value": ...}`` or ``None``.
    payload: dict[str, Any] | None
    #: True when a real variant was selected (Unleash's variant ``enabled``).
    variant_enabled: bool
    reason: str
    rule_index: int | None
    found: bool

    def as_unleash_variant(self) -> dict[str, Any]:
        """The Unleash ``getVariant`` shape: name, payload (when any), enabled, feature_enabled."""
        result: dict[str, Any] = {"name": self.variant}
        if self.payload is not None:
            result["payload"] = self.payload
        result["enabled"] = self.variant_enabled
        result["feature_enabled"] = self.enabled
        return result


# --------------------------------------------------------------------------------------------
# Bucketing: the hash, and the rollout predicates built on it


def bucket(group_id: str, value: str) -> int:
    """Unleash's rollout bucket (1..100) of ``value`` in ``group_id``."""
    return _hash(f"{group_id}:{value}", ROLLOUT_SEED, False) % 100 + 1


def variant_bucket(group_id: str, value: str, total_weight: int) -> int:
    """Unleash's variant target (1..total_weight) of ``value`` in ``group_id``."""
    return _hash(f"{group_id}:{value}", VARIANT_SEED, False) % total_weight + 1


def hashable(text: str) -> str:
    """``text`` with lone UTF-16 surrogates replaced by U+FFFD, as a JavaScript SDK encodes it.

    ``mmh3.hash`` crashes the process on a string that is not valid Unicode. Context values are
    validated before they reach the engine (``context_from_ofrep``); this covers the flag
    configuration side (group ids), once, at compile time.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def rollout_check(percentage: float, group_id: str, stickiness: str) -> Compiled:
    """The rollout predicate for a stickiness: ``default``, ``random``, ``userId``, a property."""
    if percentage <= 0:
        return False
    p = percentage
    prefix = hashable(f"{group_id}:")
    rand = _random
    h = _hash
    if stickiness == "random":

        def random_rollout(ctx: Context) -> bool:
            return int(rand() * 100) + 1 <= p

        return True if p >= 100 else random_rollout

    if stickiness == "default":

        def default_rollout(ctx: Context) -> bool:
            value = ctx.get("userId") or ctx.get("sessionId")
            if not value:
                return int(rand() * 100) + 1 <= p
            if value.__class__ is not str:
                value = as_str(value)
            return h(prefix + value, 0, False) % 100 + 1 <= p

        return True if p >= 100 else default_rollout

    if stickiness in TOP_LEVEL_FIELDS:
        field = stickiness

        def top_rollout(ctx: Context) -> bool:
            value = ctx.get(field)
            if not value:
                return False
            if value.__class__ is not str:
                value = as_str(value)
            return h(prefix + value, 0, False) % 100 + 1 <= p

        return top_rollout

    def prop_rollout(ctx: Context) -> bool:
        props = ctx.get("properties")
        value = props.get(stickiness) if props else None
        if not value:
            return False
        if value.__class__ is not str:
            value = as_str(value)
        return h(prefix + value, 0, False) % 100 + 1 <= p

    return prop_rollout


# --------------------------------------------------------------------------------------------
# Variants

EvalFn = Callable[[Context], Evaluation]


class VariantSet(NamedTuple):
    """Weighted variants, prepared for selection."""

    variants: tuple[Mapping[str, Any], ...]
    cumulative: tuple[int, ...]  # cumulative weights of the positive-weight variants
    positive: tuple[int, ...]  # indexes (in `variants`) of the positive-weight variants
    total: int
    overrides: tuple[tuple[int, tuple[tuple[str, frozenset[str]], ...]], ...]


def variant_set(variants: Iterable[Mapping[str, Any]], with_overrides: bool) -> VariantSet:
    items = tuple(v for v in variants if isinstance(v, Mapping) and v.get("name"))
    cumulative: list[int] = []
    positive: list[int] = []
    total = 0
    for index, variant in enumerate(items):
        weight = int(parse_percentage(variant.get("weight")))
        if weight <= 0:
            continue
        total += weight
        cumulative.append(total)
        positive.append(index)
    overrides: list[tuple[int, tuple[tuple[str, frozenset[str]], ...]]] = []
    if with_overrides:
        for index, variant in enumerate(items):
            rules = tuple(
                (as_str(o.get("contextName") or ""), frozenset(as_str(v) for v in o["values"]))
                for o in variant.get("overrides") or ()
                if o.get("values")
            )
            if rules:
                overrides.append((index, rules))
    return VariantSet(items, tuple(cumulative), tuple(positive), total, tuple(overrides))


def _seed_getter(stickiness: str) -> Callable[[Context], str | None]:
    """How a variant finds its stickiness value (None: use a random target)."""
    if stickiness == "random":
        return lambda ctx: None
    if stickiness == "default":

        def default_seed(ctx: Context) -> str | None:
            value = ctx.get("userId") or ctx.get("sessionId") or ctx.get("remoteAddress")
            if not value:
                return None
            return value if value.__class__ is str else as_str(value)

        return default_seed
    get = getter(stickiness)

    def field_seed(ctx: Context) -> str | None:
        value = get(ctx)
        if value is None or value == "":
            return None
        return value if value.__class__ is str else as_str(value)

    return field_seed


def variant_picker(
    flag_key: str,
    vset: VariantSet,
    group_id: str,
    stickiness: str,
    fallback: Evaluation,
) -> EvalFn | Evaluation:
    """A function choosing the variant's Evaluation, or the Evaluation when it is fixed.

    ``fallback`` is the matched rule's Evaluation without a variant: it is the answer when
    the variants' total weight is 0 and no override matches.
    """
    base_reason = fallback.reason
    multi = len(vset.positive) > 1
    hash_reason = SPLIT if multi else base_reason
    override_reason = (
        base_reason
        if _REASON_RANK[base_reason] >= _REASON_RANK[TARGETING_MATCH]
        else TARGETING_MATCH
    )

    def make(index: int, reason: str) -> Evaluation:
        variant = vset.variants[index]
        payload = variant.get("payload")
        return Evaluation(
            flag_key,
            True,
            as_str(variant["name"]),
            dict(payload) if isinstance(payload, Mapping) else None,
            True,
            reason,
            fallback.rule_index,
            True,
        )

    hashed = tuple(make(i, hash_reason) for i in vset.positive)
    unhashed = hashed[0] if len(hashed) == 1 else fallback
    overridden = tuple(
        (make(index, override_reason), tuple((getter(f), vals) for f, vals in rules))
        for index, rules in vset.overrides
    )
    if not overridden and not multi:
        return unhashed

    cumulative = vset.cumulative
    total = vset.total
    prefix = hashable(f"{group_id}:")
    seed_of = _seed_getter(stickiness)
    h = _hash
    rand = _random

    def pick(ctx: Context) -> Evaluation:
        for evaluation, rules in overridden:
            for get, allowed in rules:
                value = get(ctx)
                if (
                    value is not None
                    and (value if value.__class__ is str else as_str(value)) in allowed
                ):
                    return evaluation
        if not multi:
            return unhashed
        seed = seed_of(ctx)
        if seed is None:
            target = int(rand() * total) + 1
        else:
            target = h(prefix + seed, VARIANT_SEED, False) % total + 1
        return hashed[bisect_left(cumulative, target)]

    return pick


# --------------------------------------------------------------------------------------------
# Rules and flags


class Rollout(NamedTuple):
    """A hashed percentage rollout, kept as data so that a flag's function can inline it."""

    stickiness: str  # "default", a top-level context field, or a property name
    prefix: str  # "<groupId>:"
    percentage: float  # 0 < percentage < 100, finite


def rollout_spec(percentage: float, group_id: str, stickiness: str) -> Rollout | None:
    """The `Rollout` that `rollout_check` hashes for, when it hashes (None: constant/random)."""
    if not 0 < percentage < 100 or stickiness == "random":
        return None
    return Rollout(stickiness, hashable(f"{group_id}:"), percentage)


#: A rule: its checks (ANDed; when ``rollout`` is given the last check is that rollout's
#: predicate), its result (an Evaluation, or a function picking the variant's), its rollout.
Rule = tuple[tuple[Predicate, ...], Evaluation | EvalFn, Rollout | None]


def make_flag(rules: Iterable[Rule], default: Evaluation) -> EvalFn:
    """Combine rules (OR, first match wins) into one evaluator: a generated function.

    Every rule becomes a few lines of one function: its checks are called in order and its
    rollout, the costliest and last check, is inlined (read the stickiness value, hash,
    compare), so a plain rollout costs one Python call and one hash. The source depends only
    on the rules' shapes (how many checks, which stickiness, constant or picked result), never
    on their values, which are bound as names: the code object is compiled once per shape.
    """
    shapes: list[tuple[int, str | None, bool]] = []
    names: dict[str, Any] = {
        "DEFAULT": default, "h": _hash, "as_str": as_str, "rand": _random,
    }  # fmt: skip
    for i, (checks, result, rollout) in enumerate(rules):
        pre = checks[:-1] if rollout is not None else checks
        for j, check in enumerate(pre):
            names[f"c{i}_{j}"] = check
        names[f"R{i}"] = result
        kind = None
        if rollout is not None:
            if rollout.stickiness == "default":
                kind = "default"
            elif rollout.stickiness in TOP_LEVEL_FIELDS:
                kind = "top"
            else:
                kind = "property"
            names[f"F{i}"] = rollout.stickiness
            names[f"P{i}"] = rollout.prefix
            names[f"L{i}"] = math.floor(rollout.percentage)  # bucket <= p  <=>  h % 100 < floor(p)
            names[f"Q{i}"] = rollout.percentage
        shapes.append((len(pre), kind, isinstance(result, Evaluation)))
        if not pre and kind is None:
            break  # unconditional: later rules can never be reached
    if len(shapes) == 1 and shapes[0] == (0, None, False):
        return cast(EvalFn, names["R0"])  # one unconditional variant picker
    exec(_flag_code(tuple(shapes)), names)  # noqa: S102 - generated from shapes only, see above
    return cast(EvalFn, names["flag"])


@lru_cache(maxsize=1024)
def _flag_code(shapes: tuple[tuple[int, str | None, bool], ...]) -> CodeType:
    lines = ["def flag(ctx):"]
    for i, (n_checks, kind, constant) in enumerate(shapes):
        answer = f"R{i}" if constant else f"R{i}(ctx)"
        indent = "    "
        if n_checks:
            lines.append(f"{indent}if {' and '.join(f'c{i}_{j}(ctx)' for j in range(n_checks))}:")
            indent += "    "
        if kind is None:
            lines.append(f"{indent}return {answer}")
            continue
        if kind == "default":
            lines.append(f"{indent}v = ctx.get('userId') or ctx.get('sessionId')")
        elif kind == "top":
            lines.append(f"{indent}v = ctx.get(F{i})")
        else:
            lines.append(f"{indent}v = ctx.get('properties')")
            lines.append(f"{indent}v = v.get(F{i}) if v else None")
        lines += [
            f"{indent}if v:",
            f"{indent}    if v.__class__ is not str:",
            f"{indent}        v = as_str(v)",
            f"{indent}    if h(P{i} + v, 0, False) % 100 < L{i}:",
            f"{indent}        return {answer}",
        ]
        if kind == "default":  # no user and no session: a random draw, as Unleash
            lines += [
                f"{indent}elif int(rand() * 100) + 1 <= Q{i}:",
                f"{indent}    return {answer}",
            ]
    lines.append("    return DEFAULT")
    return compile("\n".join(lines), "<flags.engine flag>", "exec")


class CompiledFlag:
    """A compiled flag: ``evaluate`` picks the variant, ``decide`` only decides on/off."""

    __slots__ = ("decide", "dependencies", "enabled", "evaluate", "key")

    def __init__(
        self,
        key: str,
        enabled: bool,
        evaluate: EvalFn,
        decide: EvalFn,
        dependencies: list[Mapping[str, Any]],
    ) -> None:
        self.key = key
        self.enabled = enabled
        self.evaluate = evaluate
        self.decide = decide
        self.dependencies = dependencies


def with_dependencies(flag: CompiledFlag, flags: Mapping[str, CompiledFlag]) -> CompiledFlag:
    """Wrap a flag's evaluators so that they first check the flag's parents."""
    if not flag.dependencies or not flag.enabled:
        return flag  # a disabled flag answers DISABLED whatever its parents say
    failed = Evaluation(flag.key, False, DISABLED_VARIANT, None, False, DEFAULT, None, True)
    checks: list[Predicate] = []
    for dependency in flag.dependencies:
        parent = flags.get(as_str(dependency.get("feature")))
        if parent is None or parent.dependencies:
            # Missing parent, transitive chain or cycle: never satisfied.
            return CompiledFlag(
                flag.key, True, lambda ctx: failed, lambda ctx: failed, flag.dependencies
            )
        expect_enabled = dependency.get("enabled", True) is not False
        variants = frozenset(as_str(v) for v in dependency.get("variants") or ())
        checks.append(_dependency_check(parent, expect_enabled, variants))
    evaluate, decide = flag.evaluate, flag.decide
    deps = tuple(checks)

    def evaluate_with_parents(ctx: Context) -> Evaluation:
        for check in deps:
            if not check(ctx):
                return failed
        return evaluate(ctx)

    def decide_with_parents(ctx: Context) -> Evaluation:
        for check in deps:
            if not check(ctx):
                return failed
        return decide(ctx)

    return CompiledFlag(
        flag.key, True, evaluate_with_parents, decide_with_parents, flag.dependencies
    )


def _dependency_check(
    parent: CompiledFlag, expect_enabled: bool, variants: frozenset[str]
) -> Predicate:
    parent_decide = parent.decide
    if not expect_enabled:
        return lambda ctx: not parent_decide(ctx).enabled
    if variants:
        parent_evaluate = parent.evaluate

        def variant_matches(ctx: Context) -> bool:
            result = parent_evaluate(ctx)
            return result.enabled and result.variant in variants

        return variant_matches
    return lambda ctx: parent_decide(ctx).enabled


# --------------------------------------------------------------------------------------------
# Snapshot


class Snapshot:
    """A compiled, immutable set of flags for one environment. Thread-safe."""

    __slots__ = ("_deciders", "_evaluators", "flag_keys")

    def __init__(self, flags: Mapping[str, CompiledFlag]) -> None:
        self._evaluators: dict[str, EvalFn] = {k: f.evaluate for k, f in flags.items()}
        self._deciders: dict[str, EvalFn] = {k: f.decide for k, f in flags.items()}
        self.flag_keys: tuple[str, ...] = tuple(flags)

    def __contains__(self, flag_key: object) -> bool:
        return flag_key in self._evaluators

    def __len__(self) -> int:
        return len(self.flag_keys)

    def evaluate(self, flag_key: str, context: Context | None = None) -> Evaluation:
        """Evaluate one flag (Unleash ``isEnabled`` plus variant and reason)."""
        evaluator = self._evaluators.get(flag_key)
        if evaluator is None:
            return Evaluation(flag_key, False, DISABLED_VARIANT, None, False, DEFAULT, None, False)
        return evaluator(EMPTY if context is None else context)

    def is_enabled(self, flag_key: str, context: Context | None = None) -> bool:
        """Unleash ``isEnabled``: on/off only, without choosing a variant."""
        decide = self._deciders.get(flag_key)
        if decide is None:
            return False
        return decide(EMPTY if context is None else context).enabled

    def get_variant(self, flag_key: str, context: Context | None = None) -> dict[str, Any]:
        """Unleash ``getVariant``: ``{"name", "payload"?, "enabled", "feature_enabled"}``."""
        return self.evaluate(flag_key, context).as_unleash_variant()

    def evaluate_all(self, context: Context | None = None) -> dict[str, Evaluation]:
        """Evaluate every flag, in document order."""
        ctx = EMPTY if context is None else context
        return {key: evaluator(ctx) for key, evaluator in self._evaluators.items()}
