"""Scheduler benchmark: 1,000 rollouts due at once, a real Celery beat, 1 and 2 workers.

Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); without them it says so and exits 0.
It creates its own database (``<name>_bench_scheduler``), migrates it, stores beat's
"Rollout scheduler sweep" schedule at ``ROLLCALL_TICK_SECONDS`` (as configured; default 30 s:
the data migration stores a fixed 30 s interval, so the bench writes the configured one
through ``core.schedules.ensure_periodic_task``), creates 1,000 running rollouts (10-minute
soaks) and starts one real ``celery beat`` (DatabaseScheduler) that runs for the whole bench.

Each sample: start 1 or 2 worker processes (prefork, concurrency 1 each), make every rollout
due at the same instant T (now + 2 s), and wait until all have advanced one phase. Beat's
sweep fires on its own clock, so a rollout waits for the next tick after T, then for the
workers. Per sample it prints:

- lateness (the event's applied time minus its due time) p50 / p95 / max;
- the span from the sweep that found them (its heartbeat) to the last one applied, and whether
  all were advanced within one tick of that sweep (before the next tick would fire).

Samples alternate 1 and 2 workers (1,2,1,2,...), ``BENCH_SCHEDULER_SAMPLES`` per worker count
(default 3; quick: 1). The summary gives medians and ranges per worker count and the median
of the per-pair ratios (1-worker span / 2-worker span).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollcall REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/scheduler.py
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stats import env_number, percentile, ratio_spread, spread  # noqa: E402

SOAK = timedelta(minutes=10)
SWEEP = "Rollout scheduler sweep"
SWEEP_HEARTBEAT = "rollouts.sweep"


def usage() -> int:
    print(
        "scheduler: not measured (needs PostgreSQL and Redis). Run it as:\n"
        "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollcall \\\n"
        "  REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/scheduler.py\n"
        "It creates and drops its own database (<name>_bench_scheduler)."
    )
    return 0


def admin_sql(url: str, sql: str) -> None:
    import psycopg

    parts = urlparse(url)
    admin = urlunparse(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def main() -> int:
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        return usage()
    n_rollouts = int(env_number("BENCH_SCHEDULER_ROLLOUTS", 1000, 1000))
    samples = int(env_number("BENCH_SCHEDULER_SAMPLES", 3, 1))

    parts = urlparse(base_url)
    db_name = f"{parts.path.lstrip('/') or 'rollcall'}_bench_scheduler"
    bench_url = urlunparse(parts._replace(path=f"/{db_name}"))
    admin_sql(base_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    admin_sql(base_url, f'CREATE DATABASE "{db_name}"')
    queue = f"rollcall-bench-scheduler-{os.getpid()}"
    os.environ.update(
        DATABASE_URL=bench_url,
        CELERY_QUEUE=queue,
        DJANGO_SETTINGS_MODULE="config.settings",
        CACHE_KEY_PREFIX=f"bench-scheduler-{os.getpid()}",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="60",
        DEBUG="False",  # production settings: no per-query debug bookkeeping in the workers
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
    )
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="rollcall-bench-scheduler-"))
    try:
        return run(n_rollouts, samples, procs, tmp)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        admin_sql(base_url, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def _celery(args: list[str], tmp: Path, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args],
        cwd=ROOT,
        env=dict(os.environ),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / f"{name}.log").open("wb"),
    )


def run(n_rollouts: int, samples: int, procs: list[subprocess.Popen[bytes]], tmp: Path) -> int:
    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from config.celery import app
    from core.models import Heartbeat
    from core.schedules import ensure_periodic_task
    from flags.models import Environment
    from rollouts import services
    from rollouts.models import Phase, Rollout, RolloutEvent

    tick = int(settings.ROLLCALL_TICK_SECONDS)
    t = time.perf_counter()
    call_command("migrate", verbosity=0)
    ensure_periodic_task(apps, name=SWEEP, task="rollouts.sweep", every_seconds=tick)
    env = Environment.objects.create(key="production", name="Production", order=0)
    release = services.release_create(name="Bench", version="1", actor=None)
    steps = 2 * samples
    percentages = [max(1, round(90 * (i + 1) / (steps + 1))) for i in range(steps + 1)] + [100]
    plan = [
        {"name": f"{p}% ({i})", "percentage": p, "soak": SOAK if i else None}
        for i, p in enumerate(percentages)
    ]
    ui = RolloutEvent.Source.UI
    for i in range(n_rollouts):
        with transaction.atomic():
            rollout = services.rollout_create(
                release=release, environment=env, strategy="canary", key=f"bench-{i}",
                flag_key=f"bench-{i}", actor=None, source=ui, phases=plan,
            )  # fmt: skip
            services.rollout_start(rollout=rollout, actor=None, source=ui)
    print(
        f"Scheduler: {n_rollouts} running rollouts (setup {time.perf_counter() - t:.0f} s); "
        f"tick ROLLCALL_TICK_SECONDS={tick} s; real celery beat; workers: prefork, concurrency "
        f"1 each; {samples} sample(s) per worker count, alternating",
        flush=True,
    )
    app.control.purge()  # the notices the setup's events asked for
    procs.append(
        _celery(
            ["beat", "--loglevel=WARNING", f"--pidfile={tmp / 'beat.pid'}",
             "--scheduler=django_celery_beat.schedulers:DatabaseScheduler"],
            tmp, "beat",
        )
    )  # fmt: skip

    def start_workers(n: int) -> list[subprocess.Popen[bytes]]:
        started = []
        for i in range(n):
            proc = _celery(
                ["worker", "--concurrency=1", "--without-mingle", "--without-gossip",
                 "--loglevel=WARNING", f"--hostname=bench{i}-{os.getpid()}-{time.time_ns()}@%h"],
                tmp, f"worker{i}",
            )  # fmt: skip
            procs.append(proc)
            started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(app.control.ping(timeout=1.0) or []) >= n:
                return started
        raise RuntimeError("workers did not start")

    def stop(workers: list[subprocess.Popen[bytes]]) -> None:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=60)

    results: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    step = 0
    for _sample in range(samples):
        for n in (1, 2):
            step += 1
            workers = start_workers(n)
            due = timezone.now() + timedelta(seconds=2)
            # Every rollout's current phase was applied one soak before T: all due at T.
            Phase.objects.filter(order=step - 1).update(applied_at=due - SOAK)
            Rollout.objects.update(next_due_at=due, phase_started_at=due - SOAK)
            events = RolloutEvent.objects.filter(kind="advanced", to_phase_index=step)
            sweep_at = None
            began = time.monotonic()
            while True:
                if sweep_at is None:
                    beat = Heartbeat.objects.filter(name=SWEEP_HEARTBEAT).first()
                    if beat is not None and beat.last_seen >= due:
                        sweep_at = beat.last_seen
                if events.count() >= n_rollouts:
                    break
                if time.monotonic() - began > 900:
                    raise RuntimeError(f"only {events.count()} advanced in 900 s")
                time.sleep(0.2)
            stop(workers)
            rows = list(events.values_list("at", "due_at"))
            lateness = [(at - due_at).total_seconds() for at, due_at in rows]
            last = max(at for at, _ in rows)
            if sweep_at is None:  # the sweep heartbeat was missed: the first tick after T
                sweep_at = min(at for at, _ in rows)
            span = (last - sweep_at).total_seconds()
            result = {
                "span": span,
                "p50": statistics.median(lateness),
                "p95": percentile(lateness, 95),
                "max": max(lateness),
                "within": span <= tick,
            }
            results[n].append(result)
            print(
                f"  {n} worker(s): lateness p50 {result['p50']:.1f} s, p95 {result['p95']:.1f} s, "
                f"max {result['max']:.1f} s; sweep -> last applied {span:.1f} s "
                f"({n_rollouts / max(span, 1e-3):.0f}/s); all within one tick ({tick} s): "
                f"{'yes' if result['within'] else 'NO'}",
                flush=True,
            )

    print("\nScheduler summary (median (min-max) over samples):")
    for n in (1, 2):
        rs = results[n]
        within = sum(r["within"] for r in rs)
        spans = spread([r["span"] for r in rs], "{:.1f}", " s")
        print(
            f"  {n} worker(s): sweep -> last applied {spans}"
            f"; lateness p95 {spread([r['p95'] for r in rs], '{:.1f}', ' s')}, "
            f"max {spread([r['max'] for r in rs], '{:.1f}', ' s')}; "
            f"within one tick in {within} of {len(rs)} samples"
        )
    ratios = [a["span"] / b["span"] for a, b in zip(results[1], results[2], strict=True)]
    print(f"  2 workers are {ratio_spread(ratios)} as fast as 1 (per-pair span ratios)")
    goal = all(r["within"] for r in results[2])
    print(
        f"  goal (all {n_rollouts} advanced within one {tick} s tick with 2 workers, every "
        f"sample): {'met' if goal else 'NOT met'}"
    )
    app.control.purge()  # leave no messages of this run in the broker
    return 0


if __name__ == "__main__":
    sys.exit(main())
