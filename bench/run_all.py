"""Run every benchmark in turn (`make bench`); each prints medians, ranges and ratios.

``BENCH_QUICK=1 make bench`` (or ``BENCH_QUICK=1 .venv/bin/python bench/run_all.py``) runs
every bench with fewer, shorter samples. The scheduler and notices benches need PostgreSQL and
Redis (DATABASE_URL, REDIS_URL) and say "not measured" without them; ofrep_http measures
unleash-server only with PostgreSQL (its own database) and node/npm. Extra arguments name the
benches to run, e.g. ``bench/run_all.py engine pages``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("engine", "ofrep_http", "pages", "scheduler", "notices")


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        print(f"Unknown bench(es): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
        return 2
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    print(
        f"Rollcall benches ({'quick' if quick else 'full'} mode), {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}: {', '.join(chosen)}",
        flush=True,
    )
    failed = []
    for name in chosen:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(HERE / f"{name}.py")], cwd=HERE.parent, check=False
        )
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
        if result.returncode:
            failed.append(name)
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
