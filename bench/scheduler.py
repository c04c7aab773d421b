"""Scheduler benchmark: 1,000 rollouts due in one tick, advanced by 1 and by 2 worker processes.

Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); it creates its own database
(`<name>_bench_scheduler`), runs real Celery worker processes against it, and drops it at the
end. Each round makes every rollout due at the same instant T, runs one sweep (the task beat
would send) and waits until all 1,000 have advanced. It reports the time to advance all, the
lateness of each step (applied minus due) and the ratio of 2 workers to 1.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollcall REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/scheduler.py [--rollouts 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SOAK = timedelta(minutes=10)


def usage() -> int:
    print(
        "bench/scheduler.py needs PostgreSQL and Redis. Run it as:\n"
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


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1, help="rounds per worker count")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        return usage()

    parts = urlparse(base_url)
    db_name = f"{parts.path.lstrip('/') or 'rollcall'}_bench_scheduler"
    bench_url = urlunparse(parts._replace(path=f"/{db_name}"))
    admin_sql(base_url, f'DROP DATABASE IF EXISTS "{db_name}"')
    admin_sql(base_url, f'CREATE DATABASE "{db_name}"')
    queue = f"rollcall-bench-scheduler-{os.getpid()}"
    os.environ.update(
        DATABASE_URL=bench_url,
        CELERY_QUEUE=queue,
        DJANGO_SETTINGS_MODULE="config.settings",
        CACHE_KEY_PREFIX=f"bench-scheduler-{os.getpid()}",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="60",
        # Production settings: no per-query debug logging in the workers.
        DEBUG="False",
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        return run(args, bench_url, queue, procs)
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


def run(args: argparse.Namespace, bench_url: str, queue: str, procs: list) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from config.celery import app
    from flags.models import Environment
    from rollouts import services, tasks
    from rollouts.models import Phase, Rollout, RolloutEvent

    t = time.perf_counter()
    call_command("migrate", verbosity=0)
    env = Environment.objects.create(key="production", name="Production", order=0)
    release = services.release_create(name="Bench", version="1", actor=None)
    percentages = [10 * (i + 1) for i in range(2 * args.rounds + 1)] + [100]
    plan = [
        {"name": f"{p}%", "percentage": p, "soak": SOAK if i else None}
        for i, p in enumerate(percentages)
    ]
    ui = RolloutEvent.Source.UI

    def create(i: int) -> None:
        rollout = services.rollout_create(
            release=release,
            environment=env,
            strategy="canary",
            key=f"bench-{i}",
            flag_key=f"bench-{i}",
            actor=None,
            source=ui,
            phases=plan,
        )
        services.rollout_start(rollout=rollout, actor=None, source=ui)

    for i in range(args.rollouts):
        with transaction.atomic():
            create(i)
    print(f"setup: {args.rollouts} running rollouts in {time.perf_counter() - t:.1f}s", flush=True)
    app.control.purge()  # the notices the setup's events asked for

    def start_workers(n: int) -> list[subprocess.Popen[bytes]]:
        started = []
        for i in range(n):
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency=1",
                 "--without-mingle", "--without-gossip", "--loglevel=WARNING",
                 f"--hostname=bench{i}-{os.getpid()}@%h"],
                cwd=ROOT, env=dict(os.environ), start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(proc)
            started.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            if len(replies) >= n:
                return started
        raise RuntimeError("workers did not start")

    def stop(workers: list[subprocess.Popen[bytes]]) -> None:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=60)

    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    step = 0
    for _round in range(args.rounds):
        for n in (1, 2):
            step += 1
            workers = start_workers(n)
            due = timezone.now() + timedelta(seconds=2)
            # Every rollout's current phase was applied one soak before T: all due at T.
            Phase.objects.filter(order=step - 1).update(applied_at=due - SOAK)
            Rollout.objects.update(next_due_at=due, phase_started_at=due - SOAK)
            while timezone.now() < due:
                time.sleep(0.01)
            began = time.perf_counter()
            tasks.sweep.delay()  # what beat sends at the tick
            events = RolloutEvent.objects.filter(kind="advanced", to_phase_index=step)
            while events.count() < args.rollouts:
                if time.perf_counter() - began > 900:
                    raise RuntimeError(f"only {events.count()} advanced in 900s")
                time.sleep(0.1)
            wall = time.perf_counter() - began
            rows = list(events.values_list("at", "due_at"))
            lateness = [(at - due_at).total_seconds() for at, due_at in rows]
            span = (max(at for at, _ in rows) - due).total_seconds()
            stop(workers)
            result = {
                "seconds": span,
                "wall": wall,
                "per_second": args.rollouts / span,
                "p50": statistics.median(lateness),
                "p95": percentile(lateness, 95),
                "max": max(lateness),
            }
            results[n].append(result)
            print(
                f"{n} worker process(es): {args.rollouts} advanced in {span:.2f}s "
                f"({result['per_second']:.0f}/s); lateness p50 {result['p50']:.2f}s "
                f"p95 {result['p95']:.2f}s max {result['max']:.2f}s",
                flush=True,
            )

    one = statistics.median(r["seconds"] for r in results[1])
    two = statistics.median(r["seconds"] for r in results[2])
    tick = settings.ROLLCALL_TICK_SECONDS
    print(f"ratio: 2 workers advance {one / two:.2f}x as fast as 1 (time {two / one:.2f}x)")
    print(
        f"target: all {args.rollouts} within one tick ({tick}s) with 2 workers: "
        f"{'met' if two <= tick else 'NOT met'} ({two:.1f}s)"
    )
    app.control.purge()  # leave no messages of this run in the broker
    return 0


if __name__ == "__main__":
    sys.exit(main())
