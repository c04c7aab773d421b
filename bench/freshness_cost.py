"""In-process cost of the cross-process change check (flags/freshness.py) on OFREP.

Run from the repository root: ``.venv/bin/python bench/freshness_cost.py``. Embedded shape
(a temporary SQLite file, local-memory cache), 50 flags, ``config.wsgi`` called in process;
12 interleaved rounds of 1.5 s with ``FLAGS_SNAPSHOT_TTL`` 0.5 (the default) and 1e9 (never
checks). Prints OFREP requests per CPU-second of this process (CPU time, not wall time, so
other load on the machine matters less) and the per-round ratio. Goal: the check costs < 10%.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 12
SECONDS = 1.5


def main() -> None:
    sys.path.insert(0, str(ROOT))
    tmp = tempfile.mkdtemp()
    os.environ.update(
        ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="config.settings",
        SQLITE_PATH=f"{tmp}/freshness.sqlite3",
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import RequestFactory

    from config.wsgi import application
    from flags import services
    from flags.models import Environment

    call_command("migrate", verbosity=0)
    env = Environment.objects.create(key="production", name="Production")
    _, raw = services.sdk_key_create(environment=env, name="bench", actor=None)
    rule = {"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "userId"}}
    for i in range(50):
        flag = services.flag_create(key=f"f{i}", name=f"f{i}", actor=None)
        services.flag_state_update(
            flag=flag, environment=env, actor=None, enabled=True, rules=[rule]
        )
    factory = RequestFactory()

    def call(user: str) -> None:
        body = json.dumps({"context": {"targetingKey": user}})
        request = factory.post(
            "/ofrep/v1/evaluate/flags/f7", body, "application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
        )  # fmt: skip
        b"".join(application(request.environ, lambda s, h, e=None: None))

    call("warm")
    results: dict[str, list[float]] = {"0.5": [], "never": []}
    for _ in range(ROUNDS):
        for name, ttl in (("0.5", 0.5), ("never", 1e9)):
            settings.FLAGS_SNAPSHOT_TTL = ttl
            n, started, cpu = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - started < SECONDS:
                call(f"u{n}")
                n += 1
            results[name].append(n / (time.process_time() - cpu))
    for name, values in results.items():
        print(
            f"TTL {name:>5}: {statistics.median(values):,.0f} requests per CPU-second "
            f"(min {min(values):,.0f}, max {max(values):,.0f})"
        )
    ratios = [a / b for a, b in zip(results["0.5"], results["never"], strict=True)]
    print(
        f"TTL 0.5 / never, per round: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); goal >= 0.90"
    )


if __name__ == "__main__":
    main()
