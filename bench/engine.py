"""Engine benchmark: evaluations per second on three flag shapes, interleaved rounds.

Engines, all in .venv, each given the same flag in its own format and the same contexts,
pre-shaped outside the timed loop:

- Rollcall ``flags.engine``: ``Snapshot.evaluate`` (full Evaluation: on/off, variant, reason);
- pure-Python ``UnleashClient<6``, bootstrapped offline (no network, no metrics):
  ``is_enabled`` (``get_variant`` for the variants shape);
- ``flagsmith-flag-engine``: ``get_evaluation_result`` (a segment with the same conditions and
  a percentage split; multivariate values for the variants shape);
- for the plain rollout only, a bare ``mmh3.hash(s, 0, False)`` call on pre-built
  ``"group:user"`` strings: the floor any Unleash-compatible engine pays per evaluation (the
  target's reference); and, for reference only, the same call plus building that key from
  the context (``mmh3 call + key``).

Flag shapes: ``plain`` (flexibleRollout 30% on userId), ``constraints`` (plan IN [pro,
enterprise] AND appVersion SEMVER_GT 2.0.0, then 30%), ``variants`` (50% rollout with three
weighted strategy variants 200/300/500 on userId).

Each round shapes fresh contexts, checks that Rollcall's answers (on/off, and the variant name
for ``variants``) equal UnleashClient's on every one of them (the bench fails otherwise), then
times every engine for ``BENCH_ENGINE_SECONDS`` (default 1 s; quick: 0.25 s) one after
another in a rotating order (A,B,C,D / B,C,D,A / ...). ``BENCH_ENGINE_ROUNDS`` rounds
(default 7; quick: 3). Printed: evals/s as median (min-max) over rounds, and ratios as the
median (min-max) of the per-round ratios Rollcall / other.

Run from the repository root: ``.venv/bin/python bench/engine.py`` (``BENCH_QUICK=1`` for a
short run). Targets (issue 15): >= 10x flagsmith-flag-engine, >= 5x UnleashClient<6 on every
shape; the plain rollout at >= 0.6 of one bare mmh3 call.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import env_number, median, ratio_spread, spread
from flags.engine import compile_snapshot

N_CONTEXTS = 1000
PERCENTAGE = 30
PLANS_ON = ("enterprise", "pro")
MIN_VERSION = "2.0.0"
VARIANTS = (("blue", 200), ("green", 300), ("red", 500))
TARGETS = {"flagsmith-flag-engine": 10.0, "UnleashClient": 5.0, "bare mmh3 call": 0.6}

Run = Callable[[Any], Any]


def _strategy(flag: str, shape: str) -> dict[str, Any]:
    rollout = 50 if shape == "variants" else PERCENTAGE
    constraints: list[dict[str, Any]] = []
    if shape == "constraints":
        constraints = [
            {"contextName": "plan", "operator": "IN", "values": list(PLANS_ON)},
            {"contextName": "appVersion", "operator": "SEMVER_GT", "value": MIN_VERSION},
        ]
        for c in constraints:
            c.update(inverted=False, caseInsensitive=False)
            c.setdefault("values", [])
    variants: list[dict[str, Any]] = []
    if shape == "variants":
        variants = [
            {"name": name, "weight": weight, "weightType": "variable", "stickiness": "userId"}
            for name, weight in VARIANTS
        ]
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(rollout), "stickiness": "userId", "groupId": flag},
        "constraints": constraints,
        "segments": [],
        "variants": variants,
    }


def unleash_state(shape: str) -> tuple[str, dict[str, Any]]:
    flag = f"bench.{shape}"
    feature = {
        "name": flag,
        "enabled": True,
        "type": "release",
        "strategies": [_strategy(flag, shape)],
        "variants": [],
        "dependencies": [],
        "impressionData": False,
    }
    return flag, {"version": 2, "features": [feature], "segments": []}


def make_contexts(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    plans = ("free", "team", "pro", "enterprise")
    return [
        {
            "userId": f"user-{rng.randrange(10**9)}-{i}",
            "sessionId": f"s-{rng.randrange(10**12)}",
            "properties": {
                "plan": rng.choice(plans),
                "appVersion": f"{rng.randrange(1, 4)}.{rng.randrange(20)}.{rng.randrange(9)}",
            },
        }
        for i in range(n)
    ]


# --------------------------------------------------------------------------------------------
# Engines: build(contexts) -> (run one context, contexts in the engine's shape)


class Rollcall:
    name = "Rollcall"

    def __init__(self, flag: str, state: dict[str, Any], shape: str) -> None:
        self.flag, self.shape = flag, shape
        self.snapshot = compile_snapshot(state)

    def build(self, contexts: list[dict[str, Any]]) -> tuple[Run, list[Any]]:
        evaluate, flag = self.snapshot.evaluate, self.flag
        return (lambda ctx: evaluate(flag, ctx)), contexts

    def answers(self, contexts: list[dict[str, Any]]) -> list[Any]:
        out = []
        for ctx in contexts:
            ev = self.snapshot.evaluate(self.flag, ctx)
            out.append((ev.enabled, ev.variant) if self.shape == "variants" else ev.enabled)
        return out


class Unleash:
    name = "UnleashClient"

    def __init__(self, flag: str, state: dict[str, Any], shape: str, cache_dir: str) -> None:
        from UnleashClient import UnleashClient
        from UnleashClient.cache import FileCache
        from UnleashClient.utils import InstanceAllowType

        logging.getLogger("UnleashClient").setLevel(logging.ERROR)
        cache = FileCache(f"rollcall-bench-{shape}", directory=cache_dir)
        cache.bootstrap_from_dict(state)
        self.client = UnleashClient(
            url="http://127.0.0.1:9/api",  # never contacted: bootstrapped, never started
            app_name="rollcall-bench",
            disable_metrics=True,
            disable_registration=True,
            cache=cache,
            multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        )
        self.flag, self.shape = flag, shape

    def build(self, contexts: list[dict[str, Any]]) -> tuple[Run, list[Any]]:
        flag = self.flag
        if self.shape == "variants":
            get_variant = self.client.get_variant
            return (lambda ctx: get_variant(flag, ctx)), contexts
        is_enabled = self.client.is_enabled
        return (lambda ctx: is_enabled(flag, ctx)), contexts

    def answers(self, contexts: list[dict[str, Any]]) -> list[Any]:
        if self.shape == "variants":
            out = []
            for ctx in contexts:
                v = self.client.get_variant(self.flag, ctx)
                out.append((bool(v["feature_enabled"]), v["name"]))
            return out
        return [bool(self.client.is_enabled(self.flag, ctx)) for ctx in contexts]


class Flagsmith:
    """The closest Flagsmith equivalent: a segment override (conditions + percentage split)."""

    name = "flagsmith-flag-engine"

    def __init__(self, flag: str, shape: str) -> None:
        from flag_engine.engine import get_evaluation_result

        self.evaluate = get_evaluation_result
        self.flag = flag
        self.environment = {"key": "bench-env-key", "name": "bench"}
        feature: dict[str, Any] = {"key": "1", "name": flag, "enabled": False, "value": None}
        override: dict[str, Any] = {**feature, "enabled": True, "priority": 0}
        if shape == "variants":
            total = sum(w for _, w in VARIANTS)
            override["value"] = "control"
            override["variants"] = [
                {"value": name, "weight": 100 * w / total, "priority": i}
                for i, (name, w) in enumerate(VARIANTS)
            ]
        pct = 50 if shape == "variants" else PERCENTAGE
        conditions: list[dict[str, Any]] = []
        if shape == "constraints":
            conditions = [
                {"property": "plan", "operator": "IN", "value": list(PLANS_ON)},
                {"property": "appVersion", "operator": "GREATER_THAN",
                 "value": f"{MIN_VERSION}:semver"},
            ]  # fmt: skip
        conditions.append({"property": "", "operator": "PERCENTAGE_SPLIT", "value": str(pct)})
        segment = {
            "key": "42",
            "name": "bench audience",
            "rules": [{"type": "ALL", "conditions": conditions}],
            "overrides": [override],
        }
        self.features = {flag: feature}
        self.segments = {"42": segment}

    def build(self, contexts: list[dict[str, Any]]) -> tuple[Run, list[Any]]:
        shaped = []
        for ctx in contexts:
            identifier = ctx["userId"]
            shaped.append(
                {
                    "environment": self.environment,
                    "identity": {
                        "identifier": identifier,
                        "key": f"{self.environment['key']}_{identifier}",
                        "traits": dict(ctx["properties"]),
                    },
                    "features": self.features,
                    "segments": self.segments,
                }
            )
        evaluate, flag = self.evaluate, self.flag
        return (lambda ctx: evaluate(ctx)["flags"][flag]), shaped


class BareMmh3:
    """One ``mmh3.hash`` call per evaluation on pre-built ``group:user`` strings."""

    name = "bare mmh3 call"

    def __init__(self, flag: str) -> None:
        import mmh3

        self.hash, self.flag = mmh3.hash, flag

    def build(self, contexts: list[dict[str, Any]]) -> tuple[Run, list[Any]]:
        h = self.hash
        return (lambda s: h(s, 0, False)), [f"{self.flag}:{c['userId']}" for c in contexts]


class Mmh3WithKey:
    """For reference: the bare call plus building its ``group:user`` key from the context."""

    name = "mmh3 call + key"

    def __init__(self, flag: str) -> None:
        import mmh3

        self.hash, self.flag = mmh3.hash, flag

    def build(self, contexts: list[dict[str, Any]]) -> tuple[Run, list[Any]]:
        h, flag = self.hash, self.flag
        return (lambda ctx: h(f"{flag}:{ctx['userId']}", 0, False)), contexts


# --------------------------------------------------------------------------------------------


def timed(run: Run, contexts: Sequence[Any], seconds: float) -> float:
    """Evaluations per second over whole passes of the contexts for about `seconds`."""
    gc.collect()
    gc.disable()
    try:
        passes = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for ctx in contexts:
                run(ctx)
            passes += 1
            now = time.perf_counter()
            if now >= deadline:
                break
    finally:
        gc.enable()
    return passes * len(contexts) / (now - start)


def bench_shape(shape: str, rounds: int, seconds: float, cache_dir: str) -> dict[str, Any]:
    flag, state = unleash_state(shape)
    ours = Rollcall(flag, state, shape)
    unleash = Unleash(flag, state, shape, cache_dir)
    engines: list[Any] = [ours, unleash, Flagsmith(flag, shape)]
    if shape == "plain":
        engines += [BareMmh3(flag), Mmh3WithKey(flag)]
    rates: dict[str, list[float]] = {e.name: [] for e in engines}
    checked = 0
    for r in range(rounds):
        contexts = make_contexts(N_CONTEXTS, seed=20240601 + r)
        mine, theirs = ours.answers(contexts), unleash.answers(contexts)
        bad = [i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b]
        if bad:
            i = bad[0]
            raise SystemExit(
                f"MISMATCH ({shape}, round {r + 1}): {len(bad)} of {len(contexts)} contexts, "
                f"e.g. {contexts[i]}: Rollcall {mine[i]!r}, UnleashClient {theirs[i]!r}"
            )
        checked += len(contexts)
        built = [(e, *e.build(contexts)) for e in engines]
        order = built[r % len(built) :] + built[: r % len(built)]
        for engine, run, shaped in order:
            rates[engine.name].append(timed(run, shaped, seconds))
    on = sum(
        1
        for a in ours.answers(make_contexts(N_CONTEXTS, 1))
        if (a[0] if shape == "variants" else a)
    )
    return {"rates": rates, "checked": checked, "on_share": on / N_CONTEXTS}


def main() -> int:
    rounds = int(env_number("BENCH_ENGINE_ROUNDS", 7, 3))
    seconds = env_number("BENCH_ENGINE_SECONDS", 1.0, 0.25)
    print(
        f"Engine: {rounds} interleaved rounds x {seconds:g} s per engine per round, "
        f"{N_CONTEXTS} fresh contexts per round; evals/s median (min-max) over rounds"
    )
    ok = True
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rollcall-bench-") as cache_dir:
        for shape in ("plain", "constraints", "variants"):
            result = bench_shape(shape, rounds, seconds, cache_dir)
            rates = result["rates"]
            print(
                f"\n[{shape}] on for {result['on_share']:.0%} of contexts; answers equal to "
                f"UnleashClient's on all {result['checked']:,} checked contexts"
            )
            for name, values in rates.items():
                print(f"  {name:<24} {spread(values):>32} evals/s")
            mine = rates["Rollcall"]
            for name, values in rates.items():
                if name == "Rollcall":
                    continue
                per_round = [a / b for a, b in zip(mine, values, strict=True)]
                target = TARGETS.get(name)
                verdict = "reference, no target"
                if target is not None:
                    met = median(per_round) >= target
                    ok &= met
                    verdict = f"target >= {target:g}x: {'met' if met else 'MISSED'}"
                line = f"  Rollcall / {name:<22} {ratio_spread(per_round):>22}  ({verdict})"
                print(line)
                summary.append(f"{shape:<12}{line.strip()}")
    print("\nEngine ratios (median of per-round ratios, range):")
    for line in summary:
        print(f"  {line}")
    print(f"  every target {'met' if ok else 'NOT met'}")
    return 0  # a missed target is a finding, not a failure; a wrong answer fails (above)


if __name__ == "__main__":
    raise SystemExit(main())
