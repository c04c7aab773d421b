"""Notices benchmark: 10,000 webhook deliveries through real Celery workers.

Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); without them it says so and exits 0.
It uses a dedicated database (`<name of DATABASE_URL's database>_bench_notices`, dropped and
migrated at the start) and its own Celery queue, starts a local webhook receiver (threaded
http.server that verifies every HMAC signature and counts arrivals per X-Rollcall-Delivery),
creates 500 notices x 20 signed-webhook channels = 10,000 deliveries, then for 1 and for 2
worker processes (prefork, concurrency 1 each; --pool/--concurrency change it) measures the
time from dispatch (one sweep: render, queue the outbox rows, publish the tasks) until every
delivery is sent.

Reported per run: deliveries/s, lost (never arrived), duplicated (an id arriving twice),
bad signatures; ratios: 2 workers / 1 worker, and each against a baseline in the same run
(one process POSTing the same signed bodies to the same receiver, no database, no broker).

Run from the repository root:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollcall REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/notices.py [--deliveries 10000] [--channels 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_database_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = (parts.path.lstrip("/") or "rollcall") + "_bench_notices"
    return urlunsplit(parts._replace(path="/" + name)), name


def recreate_database(url: str, name: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def child_env(db_url: str, queue: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        CELERY_QUEUE=queue,
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        CONN_MAX_AGE="60",
        # The bench's receiver listens on 127.0.0.1, which Rollcall refuses unless allowed.
        ROLLCALL_OUTBOUND_ALLOW="127.0.0.1",
    )
    return env


def start_worker(
    env: dict[str, str], name: str, log: Path, *, pool: str, concurrency: int
) -> subprocess.Popen[bytes]:
    level = os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", f"--loglevel={level}",
         f"--pool={pool}", f"--concurrency={concurrency}", "--without-mingle", "--without-gossip",
         f"--hostname={name}@%h"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    parser.add_argument("--deliveries", type=int, default=2_000 if quick else 10_000)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--pool", default="prefork", help="Celery pool of each worker.")
    parser.add_argument("--concurrency", type=int, default=1, help="Pool size of each worker.")
    args = parser.parse_args()
    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres", "postgresql")) or not redis_url:
        print("notices bench: skipped (needs DATABASE_URL pointing at PostgreSQL and REDIS_URL)")
        return 0
    db_url, db_name = bench_database_url(database_url)
    queue = f"bench-notices-{os.getpid()}"
    print(
        f"bench database {db_name}, queue {queue}; each worker: --pool={args.pool} "
        f"--concurrency={args.concurrency}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    recreate_database(db_url, db_name)
    env = child_env(db_url, queue)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    import django

    django.setup()

    from django.utils import timezone

    from comms import channels, services
    from comms.models import Channel, Delivery, Notice
    from tests.comms.receivers import WebhookReceiver

    receiver = WebhookReceiver().start()
    audience = services.audience_create(name="Bench partners", actor=None)
    hooks = []
    for i in range(args.channels):
        hook = services.channel_create(
            audience=audience, kind=Channel.Kind.WEBHOOK, name=f"Partner {i}",
            url=f"{receiver.url}/p{i}", actor=None,
        )  # fmt: skip
        receiver.secrets[f"/p{i}"] = hook.signing_secret
        hooks.append(hook)
    notices = args.deliveries // args.channels

    def baseline(n: int = 2000) -> float:
        """One process, no database or broker: sign and POST the same kind of body."""
        message = channels.Message(
            delivery_id="", channel_kind="webhook", url="", signing_secret="", recipient="",
            event="custom", subject="Bench", text="x", markdown="x", html="<p>x</p>", slack="x",
            payload={"notice": {"id": 0}},
        )  # fmt: skip
        start = time.perf_counter()
        for i in range(n):
            hook = hooks[i % len(hooks)]
            channels.send(
                channels.Message(**{**message.__dict__, "delivery_id": f"baseline-{i}",
                                    "url": hook.url, "signing_secret": hook.signing_secret})
            )  # fmt: skip
        return n / (time.perf_counter() - start)

    def prepare() -> None:
        Notice.objects.all().delete()
        future = timezone.now() + timezone.timedelta(days=1)
        for n in range(notices):
            services.notice_create(
                audience=audience, subject=f"Bench {n}: {{{{ audience.name }}}}",
                body="**Bench** notice.", actor=None, send_at=future,
            )  # fmt: skip
        with receiver.lock:
            receiver.arrivals.clear()
            receiver.processed.clear()
            receiver.bad_signatures.clear()

    def run(workers: int) -> dict[str, float]:
        prepare()
        total = Delivery.objects.count()
        logs = [Path(f"/tmp/bench-notices-worker-{workers}-{i}.log") for i in range(workers)]
        procs = [
            start_worker(
                env,
                f"bench{workers}-{i}-{os.getpid()}",
                log,
                pool=args.pool,
                concurrency=args.concurrency,
            )
            for i, log in enumerate(logs)
        ]
        try:
            time.sleep(4)  # workers connect to the broker
            start = time.perf_counter()
            services.notices_send_due(now=timezone.now() + timezone.timedelta(days=2))
            deadline = start + args.timeout
            while time.perf_counter() < deadline:
                sent = Delivery.objects.filter(state=Delivery.State.SENT).count()
                if sent == total and not Notice.objects.exclude(state=Notice.State.SENT).exists():
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
        finally:
            stop(procs)
        ids = {str(k) for k in Delivery.objects.values_list("idempotency_key", flat=True)}
        arrivals = receiver.ids()
        sent = Delivery.objects.filter(state=Delivery.State.SENT).count()
        result = {
            "workers": workers,
            "deliveries": total,
            "seconds": elapsed,
            "per_second": sent / elapsed,
            "lost": len(ids - set(arrivals)),
            "duplicated": sum(1 for n in arrivals.values() if n > 1),
            "bad_signatures": len(receiver.bad_signatures),
            "not_sent": total - sent,
            "notices_not_sent": Notice.objects.exclude(state=Notice.State.SENT).count(),
        }
        print(
            f"{workers} worker{'s' if workers > 1 else ''}: {total} deliveries in "
            f"{elapsed:.1f} s = {result['per_second']:.0f}/s; lost {result['lost']}, "
            f"duplicated {result['duplicated']}, bad signatures {result['bad_signatures']}, "
            f"not sent {result['not_sent']}, notices not sent {result['notices_not_sent']}",
            flush=True,
        )
        return result

    try:
        raw = baseline()
        print(f"baseline (one process, sign + POST, no DB/broker): {raw:.0f}/s", flush=True)
        one = run(1)
        two = run(2)
    finally:
        receiver.stop()
    print(
        f"ratios: 2 workers / 1 worker = {two['per_second'] / one['per_second']:.2f}x; "
        f"1 worker / baseline = {one['per_second'] / raw:.2f}x; "
        f"2 workers / baseline = {two['per_second'] / raw:.2f}x"
    )
    ok = all(
        r["lost"] == 0 and r["duplicated"] == 0 and r["not_sent"] == 0 and not r["bad_signatures"]
        for r in (one, two)
    )
    print("none lost, none duplicated" if ok else "FAILED: deliveries lost or duplicated")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
