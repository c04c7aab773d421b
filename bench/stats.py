"""Small helpers shared by the benches: quick mode, medians with ranges, percentiles.

Every bench takes several samples per cell and prints the median with the range (min-max)
of the samples, so a reader sees how much the figure moved within one run.
``BENCH_QUICK=1`` shortens every bench (fewer, shorter samples) for a smoke run.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Sequence


def quick() -> bool:
    """True when BENCH_QUICK is set to anything but "", "0" or "false"."""
    return os.environ.get("BENCH_QUICK", "").lower() not in ("", "0", "false", "no")


def env_number(name: str, default: float, quick_default: float) -> float:
    """A float from the environment, else the quick or the full default."""
    raw = os.environ.get(name)
    if raw:
        return float(raw)
    return quick_default if quick() else default


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank on the sorted values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Sequence[float], fmt: str = "{:,.0f}", unit: str = "") -> str:
    """``median (min-max)`` of the samples, e.g. ``1,234 (1,100-1,300)``."""
    values = list(values)
    if not values:
        return "n/a"
    med = fmt.format(median(values))
    if len(values) == 1:
        return f"{med}{unit} (1 sample)"
    return f"{med}{unit} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def ratio_spread(values: Sequence[float]) -> str:
    """Ratios as ``6.3x (5.9-6.8)``: the median of per-sample ratios and their range."""
    values = list(values)
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}x (1 sample)"
    return f"{median(values):.2f}x ({min(values):.2f}-{max(values):.2f}x)"
