"""REGEX constraint benchmark: evaluations per second of a flag whose rule is a REGEX
constraint, in interleaved rounds, with whatever engine the checkout has.

Patterns (Rust dialect, as Unleash stores them): ``email`` ``^[a-z0-9._-]+@(example|corp)\\.com$``
(case-insensitive), ``prefix`` ``^user-[0-9]{3}`` and ``evil`` ``(a+)+$`` (catastrophic for a
backtracking engine, so its contexts are short: 8 to 16 ``a`` and a ``!``, about 1 ms a match
on Python's ``re``). Contexts: 1000 pre-built userIds, half of them matching.

To compare two checkouts, run this file from each, alternately (old, new, old, new, ...):
``BENCH_QUICK=1 .venv/bin/python bench/regex.py`` prints evals/s per pattern as median
(min-max) over ``BENCH_REGEX_ROUNDS`` rounds of ``BENCH_REGEX_SECONDS`` each.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import env_number, spread
from flags.engine import compile_snapshot

PATTERNS = {
    "email": (r"^[a-z0-9._-]+@(example|corp)\.com$", True),
    "prefix": (r"^user-[0-9]{3}", False),
    "evil": (r"(a+)+$", False),
}


def _contexts(name: str, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(1000):
        hit = i % 2 == 0
        if name == "email":
            user = f"Person.{i}@{'Example' if hit else 'elsewhere'}.com"
        elif name == "prefix":
            user = f"{'user' if hit else 'usr'}-{rng.randrange(100, 999)}-{i}"
        else:
            user = "a" * rng.randrange(8, 17) + ("" if hit else "!")
        out.append({"userId": user})
    return out


def main() -> None:
    rounds = int(env_number("BENCH_REGEX_ROUNDS", 5, 3))
    seconds = env_number("BENCH_REGEX_SECONDS", 1.0, 0.25)
    rng = random.Random(7)
    results: dict[str, list[float]] = {name: [] for name in PATTERNS}
    snapshots = {}
    for name, (pattern, ignore_case) in PATTERNS.items():
        constraint = {
            "contextName": "userId",
            "operator": "REGEX",
            "value": pattern,
            "caseInsensitive": ignore_case,
        }
        snapshots[name] = compile_snapshot(
            {
                "version": 2,
                "features": [
                    {
                        "name": name,
                        "enabled": True,
                        "strategies": [{"name": "default", "constraints": [constraint]}],
                    }
                ],
            }
        )
    for _ in range(rounds):
        for name in PATTERNS:
            evaluate = snapshots[name].evaluate
            contexts = _contexts(name, rng)
            hits = sum(evaluate(name, c).enabled for c in contexts)
            assert hits == len(contexts) // 2, (name, hits)
            count = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                for context in contexts:
                    evaluate(name, context)
                count += len(contexts)
            results[name].append(count / (time.perf_counter() - start))
    for name, values in results.items():
        print(f"{name:8s} {spread(values, unit=' evals/s')}")


if __name__ == "__main__":
    main()
