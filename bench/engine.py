"""Engine benchmark: evaluations per second of one flag over ~1000 varied contexts.

The flag: a gradual rollout (30%, sticky on the user id) restricted by one property
constraint (``plan`` in enterprise/pro). Every engine gets the same flag, expressed in its own
format, and the same contexts, pre-built in its own shape outside the timed loop:

- Rollcall ``flags.engine``: ``Snapshot.evaluate`` (full Evaluation with variant and reason)
  and ``Snapshot.is_enabled``.
- ``flagsmith-flag-engine``: ``get_evaluation_result`` on an EvaluationContext whose segment
  has one trait condition and a PERCENTAGE_SPLIT, overriding the flag to on.
- pure-Python ``UnleashClient<6``: a client bootstrapped offline from the same Unleash JSON
  (no network, metrics and registration disabled) and ``UnleashClient.is_enabled``; its
  ``Feature.is_enabled`` is timed too, as the engine's bare evaluation path.

Run from the repository root: ``.venv/bin/python bench/engine.py [--rounds N]``. Prints
evals/s per engine and the ratios Rollcall / baseline in one run. Targets: >= 5x
flagsmith-flag-engine and >= 2x UnleashClient<6.
"""

from __future__ import annotations

import argparse
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

from flags.engine import compile_snapshot

FLAG = "checkout.new-flow"
PERCENTAGE = 30
PLANS_ON = ("enterprise", "pro")
N_CONTEXTS = 1000
TARGET_FLAGSMITH = 5.0
TARGET_UNLEASH = 2.0

UNLEASH_STATE: dict[str, Any] = {
    "version": 2,
    "features": [
        {
            "name": FLAG,
            "enabled": True,
            "type": "release",
            "strategies": [
                {
                    "name": "flexibleRollout",
                    "parameters": {
                        "rollout": str(PERCENTAGE),
                        "stickiness": "userId",
                        "groupId": FLAG,
                    },
                    "constraints": [
                        {
                            "contextName": "plan",
                            "operator": "IN",
                            "values": list(PLANS_ON),
                            "inverted": False,
                            "caseInsensitive": False,
                        }
                    ],
                    "segments": [],
                    "variants": [],
                }
            ],
            "variants": [],
            "dependencies": [],
            "impressionData": False,
        }
    ],
    "segments": [],
}


def make_contexts(n: int, seed: int = 20240601) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    plans = ("free", "team", "pro", "enterprise")
    countries = ("NO", "SE", "DE", "US", "BR", "JP")
    contexts = []
    for i in range(n):
        contexts.append(
            {
                "userId": f"user-{rng.randrange(10**9)}-{i}",
                "sessionId": f"s-{rng.randrange(10**12)}",
                "remoteAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{i % 256}",
                "properties": {
                    "plan": rng.choice(plans),
                    "country": rng.choice(countries),
                    "appVersion": f"{rng.randrange(1, 4)}.{rng.randrange(20)}.{rng.randrange(9)}",
                },
            }
        )
    return contexts


# --------------------------------------------------------------------------------------------
# Engines: each returns (evaluate one context -> bool, contexts in the engine's shape)


def rollcall_engine(contexts: list[dict[str, Any]]) -> tuple[Callable[[Any], bool], list[Any]]:
    snapshot = compile_snapshot(UNLEASH_STATE)
    evaluate = snapshot.evaluate

    def run(ctx: Any) -> bool:
        return evaluate(FLAG, ctx).enabled

    return run, contexts


def rollcall_is_enabled(contexts: list[dict[str, Any]]) -> tuple[Callable[[Any], bool], list[Any]]:
    snapshot = compile_snapshot(UNLEASH_STATE)
    is_enabled = snapshot.is_enabled

    def run(ctx: Any) -> bool:
        return is_enabled(FLAG, ctx)

    return run, contexts


def _unleash_client(cache_dir: str) -> Any:
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache
    from UnleashClient.utils import InstanceAllowType

    logging.getLogger("UnleashClient").setLevel(logging.ERROR)
    cache = FileCache("rollcall-bench", directory=cache_dir)
    cache.bootstrap_from_dict(UNLEASH_STATE)
    return UnleashClient(
        url="http://127.0.0.1:9/api",  # never contacted: the client is bootstrapped
        app_name="rollcall-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
    )


def unleash_client_engine(
    contexts: list[dict[str, Any]], cache_dir: str
) -> tuple[Callable[[Any], bool], list[Any]]:
    client = _unleash_client(cache_dir)
    is_enabled = client.is_enabled

    def run(ctx: Any) -> bool:
        return bool(is_enabled(FLAG, ctx))

    return run, contexts


def unleash_feature_engine(
    contexts: list[dict[str, Any]], cache_dir: str
) -> tuple[Callable[[Any], bool], list[Any]]:
    client = _unleash_client(cache_dir)
    feature = client.features[FLAG]
    is_enabled = feature.is_enabled
    # The client merges its static context (appName, environment) before Feature.is_enabled.
    static = client.unleash_static_context
    shaped = [{**static, **ctx} for ctx in contexts]

    def run(ctx: Any) -> bool:
        return bool(is_enabled(ctx))

    return run, shaped


def flagsmith_engine(contexts: list[dict[str, Any]]) -> tuple[Callable[[Any], bool], list[Any]]:
    from flag_engine.engine import get_evaluation_result

    environment = {"key": "bench-env-key", "name": "bench"}
    feature = {"key": "1", "name": FLAG, "enabled": False, "value": None}
    segment = {
        "key": "42",
        "name": "new checkout audience",
        "rules": [
            {
                "type": "ALL",
                "conditions": [
                    {"property": "plan", "operator": "IN", "value": ",".join(PLANS_ON)},
                    {"property": "", "operator": "PERCENTAGE_SPLIT", "value": str(PERCENTAGE)},
                ],
            }
        ],
        "overrides": [{"key": "1", "name": FLAG, "enabled": True, "value": None, "priority": 0}],
    }
    shaped = []
    for ctx in contexts:
        identifier = ctx["userId"]
        traits = {k: v for k, v in ctx["properties"].items()}
        shaped.append(
            {
                "environment": environment,
                "identity": {
                    "identifier": identifier,
                    "key": f"{environment['key']}_{identifier}",
                    "traits": traits,
                },
                "features": {FLAG: feature},
                "segments": {"42": segment},
            }
        )

    def run(ctx: Any) -> bool:
        return bool(get_evaluation_result(ctx)["flags"][FLAG]["enabled"])

    return run, shaped


# --------------------------------------------------------------------------------------------


def measure(run: Callable[[Any], bool], contexts: Sequence[Any], rounds: int, repeat: int) -> float:
    """Best-of-`repeat` evaluations per second over `rounds` passes of the contexts."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(rounds):
                for ctx in contexts:
                    run(ctx)
            elapsed = time.perf_counter() - start
        finally:
            gc.enable()
        best = min(best, elapsed)
    return rounds * len(contexts) / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=N_CONTEXTS)
    parser.add_argument("--rounds", type=int, default=20, help="passes for the fast engines")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    contexts = make_contexts(args.contexts)
    with tempfile.TemporaryDirectory(prefix="rollcall-bench-") as cache_dir:
        engines = {
            "rollcall evaluate": rollcall_engine(contexts),
            "rollcall is_enabled": rollcall_is_enabled(contexts),
            "UnleashClient.is_enabled": unleash_client_engine(contexts, cache_dir),
            "UnleashClient Feature.is_enabled": unleash_feature_engine(contexts, cache_dir),
            "flagsmith-flag-engine": flagsmith_engine(contexts),
        }

        # Same flag, same contexts: every engine must agree before speed means anything.
        # (Flagsmith hashes differently, so only the constraint side is comparable there.)
        answers = {name: [run(c) for c in shaped] for name, (run, shaped) in engines.items()}
        reference = answers["rollcall evaluate"]
        for name in ("rollcall is_enabled", "UnleashClient.is_enabled"):
            if answers[name] != reference:
                print(f"MISMATCH: {name} disagrees with rollcall", file=sys.stderr)
                return 2
        on_share = sum(reference) / len(reference)
        smith_share = sum(answers["flagsmith-flag-engine"]) / len(reference)

        print(f"flag: flexibleRollout {PERCENTAGE}% on userId + plan IN {list(PLANS_ON)}")
        print(f"contexts: {len(contexts)}; on for {on_share:.1%} (flagsmith: {smith_share:.1%})")
        results: dict[str, float] = {}
        for name, (run, shaped) in engines.items():
            slow = name.startswith(("Unleash", "flagsmith"))
            rounds = max(1, args.rounds // 5) if slow else args.rounds
            results[name] = measure(run, shaped, rounds, args.repeat)
            print(f"  {name:<34} {results[name]:>12,.0f} evals/s")

    ours = results["rollcall evaluate"]
    ratios = [
        ("flagsmith-flag-engine", TARGET_FLAGSMITH),
        ("UnleashClient.is_enabled", TARGET_UNLEASH),
        ("UnleashClient Feature.is_enabled", TARGET_UNLEASH),
    ]
    print("ratios (rollcall evaluate / baseline):")
    ok = True
    for name, target in ratios:
        ratio = ours / results[name]
        met = ratio >= target
        ok &= met
        verdict = "met" if met else "MISSED"
        print(f"  vs {name:<34} {ratio:6.1f}x  (target >= {target:.0f}x: {verdict})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
