"""Page timings on a large generated dataset: queries per page and p50/p95 per page.

Dataset (bulk_create, a few seconds): 1,210 flags (with a state in each of 3 environments),
203 releases, 503 rollouts in every state (4 phases each, starts spread over this month),
20,013 rollout events, 2,019 notices (with their rollout and release, 1-2 deliveries each),
25 pending approvals. Stored in a database of the bench's own: ``<name>_bench_pages`` next to
DATABASE_URL's database when it is set (PostgreSQL), else ``var/bench/pages.sqlite3``.

Then:

1. Queries per page: one in-process pass with Django's test Client, logged in as a release
   manager, counting SQL with ``CaptureQueriesContext`` (no middleware added to the app).
2. Timings: the app served by gunicorn (2 workers x 4 threads, as in the Procfile; DEBUG off,
   static files collected), each page requested ``BENCH_PAGES_REQUESTS`` times (default 30;
   quick: 10) with a logged-in release manager's session, pages interleaved (round-robin),
   one request at a time. Prints p50 / p95 / max per page (client-side wall time).

Target (issue 15): every page's p95 under 300 ms on this dataset (measured, not enforced).

Run from the repository root: ``.venv/bin/python bench/pages.py``
(``BENCH_PAGES_KEEP=1`` keeps the dataset for a second run instead of regenerating it).
"""

from __future__ import annotations

import http.client
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import env_number, percentile  # noqa: E402

N_FLAGS = 1210
N_RELEASES = 203
N_ROLLOUTS = 503
N_EVENTS = 20013
N_NOTICES = 2019
N_APPROVALS = 25
TARGET_P95_MS = 300.0
USERNAME = "bench-rm"
PASSWORD = "bench-" + "rollcall"


def admin_sql(url: str, sql: str) -> None:
    import psycopg

    admin = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def configure() -> dict[str, str]:
    """Environment for this process and the server: the bench database, production settings."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "False",
        "SECURE_SSL_REDIRECT": "False",  # plain HTTP to 127.0.0.1
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
        "SESSION_COOKIE_SECURE": "False",
        "CSRF_COOKIE_SECURE": "False",
        "CACHE_KEY_PREFIX": f"bench-pages-{os.getpid()}",
        "PYTHONPATH": str(ROOT),
    }
    base = os.environ.get("DATABASE_URL", "")
    if base.startswith(("postgres://", "postgresql://")):
        parts = urlparse(base)
        name = f"{parts.path.lstrip('/') or 'rollcall'}_bench_pages"
        env["DATABASE_URL"] = urlunparse(parts._replace(path=f"/{name}"))
        env["BENCH_DB_NAME"] = name
        env["BENCH_DB_ADMIN"] = base
    else:
        (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
        env["DATABASE_URL"] = ""
        env["SQLITE_PATH"] = str(ROOT / "var" / "bench" / "pages.sqlite3")
    os.environ.update(env)
    return env


def fresh_database(env: dict[str, str], *, keep: bool = False) -> None:
    """A new, empty bench database; with `keep`, the existing one (created when missing)."""
    if env.get("BENCH_DB_NAME"):
        name = env["BENCH_DB_NAME"]
        if keep:
            import psycopg

            admin = urlunparse(urlparse(env["BENCH_DB_ADMIN"])._replace(path="/postgres"))
            with psycopg.connect(admin, autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if exists.fetchone():
                    return
        else:
            admin_sql(env["BENCH_DB_ADMIN"], f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_sql(env["BENCH_DB_ADMIN"], f'CREATE DATABASE "{name}"')
        return
    if not keep:
        for suffix in ("", "-wal", "-shm"):
            Path(env["SQLITE_PATH"] + suffix).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# The dataset


def generate() -> dict[str, Any]:
    """Create the dataset with bulk_create; returns the keys the pages need."""
    from django.contrib.auth.models import Group, Permission, User
    from django.db import transaction
    from django.utils import timezone

    from comms.models import Audience, Channel, Delivery, Notice
    from core.roles import RELEASE_MANAGERS, sync_roles
    from flags.models import Environment, Flag, FlagState
    from rollouts.models import Approval, Phase, Release, Rollout, RolloutEvent

    rng = random.Random(15)
    now = timezone.now()
    month_start = now.replace(day=1, hour=9, minute=0, second=0, microsecond=0)
    sync_roles(Group, Permission)
    user = User.objects.create_user(USERNAME, password=PASSWORD, first_name="Bench")
    user.groups.add(Group.objects.get(name=RELEASE_MANAGERS))
    other = User.objects.create_user("bench-requester", password=PASSWORD)

    with transaction.atomic():
        envs = [
            Environment.objects.create(key=key, name=key.title(), order=i, is_production=i == 2)
            for i, key in enumerate(("development", "staging", "production"))
        ]
        flags = Flag.objects.bulk_create(
            Flag(
                key=f"bench.flag-{i:04d}",
                name=f"Bench flag {i}",
                description=f"Flag number {i} of the page benchmark.",
                tags=["bench", f"team-{i % 12}"],
                owner=user if i % 3 == 0 else None,
            )
            for i in range(N_FLAGS)
        )
        FlagState.objects.bulk_create(
            FlagState(
                flag=flag,
                environment=env,
                enabled=(i + j) % 4 != 0,
                rules=[
                    {
                        "name": "flexibleRollout",
                        "parameters": {"rollout": str((i * 7) % 101), "stickiness": "userId"},
                        "constraints": [],
                    }
                ],
            )
            for i, flag in enumerate(flags)
            for j, env in enumerate(envs)
        )
        labels = list(Release.Label.values)
        releases = Release.objects.bulk_create(
            Release(
                name=f"Release {i}",
                version=f"{1 + i // 50}.{i % 50}",
                summary=f"What release {i} brings.",
                changelog="\n".join(f"- change {k} of release {i}" for k in range(8)),
                label=labels[i % len(labels)],
                known_issues="" if i % 5 else "Slow on old phones.",
                is_public=i % 2 == 0,
                owner=user,
                created_at=now - timedelta(days=N_RELEASES - i),
            )
            for i in range(N_RELEASES)
        )
        through = Release.flags.through
        through.objects.bulk_create(
            through(release_id=releases[i % N_RELEASES].id, flag_id=flag.id)
            for i, flag in enumerate(flags)
        )
        states = (
            ["running"] * 150 + ["scheduled"] * 50 + ["paused"] * 20 + ["held"] * 10
            + ["completed"] * 200 + ["rolled_back"] * 30 + ["cancelled"] * 20 + ["draft"] * 23
        )  # fmt: skip
        percentages = (10, 25, 50, 100)
        rollouts = []
        for i in range(N_ROLLOUTS):
            state = states[i]
            started = month_start + timedelta(hours=7 * i % (24 * 27))
            current = {
                "running": 1 + i % 2, "paused": 1, "held": 2, "completed": 3, "rolled_back": 1,
                "cancelled": 0,
            }.get(state, -1)  # fmt: skip
            rollouts.append(
                Rollout(
                    key=f"bench-rollout-{i:03d}",
                    release=releases[i % N_RELEASES],
                    environment=envs[i % 3],
                    strategy=list(Rollout.Strategy.values)[i % 5],
                    flag=flags[i],
                    owner=user,
                    state=state,
                    current_phase_index=current,
                    phase_started_at=started if current >= 0 else None,
                    next_due_at=started + timedelta(days=1) if state == "running" else None,
                    held_from="running" if state == "held" else "",
                    started_at=started if current >= 0 else None,
                    finished_at=started + timedelta(days=3)
                    if state in Rollout.FINAL_STATES
                    else None,
                    alert_secret=secrets.token_hex(16),
                    created_at=started - timedelta(days=2),
                )
            )
        rollouts = Rollout.objects.bulk_create(rollouts)
        phases = Phase.objects.bulk_create(
            Phase(
                rollout=r,
                order=k,
                name=f"{pct}%",
                percentage=pct,
                soak=timedelta(days=1) if k else None,
                applied_at=(r.started_at + timedelta(days=k))
                if k <= r.current_phase_index
                else None,
            )
            for r in rollouts
            for k, pct in enumerate(percentages)
        )
        kinds = ["advanced", "note", "paused", "resumed", "held", "hold_cleared"]
        events = []
        for n in range(N_EVENTS):
            r = rollouts[n % N_ROLLOUTS]
            at = (r.started_at or month_start) - timedelta(days=30) + timedelta(minutes=3 * n)
            k = n // N_ROLLOUTS
            events.append(
                RolloutEvent(
                    rollout=r,
                    kind="created" if k == 0 else kinds[k % len(kinds)],
                    source=RolloutEvent.Source.SCHEDULER if k % 2 else RolloutEvent.Source.UI,
                    actor=None if k % 2 else user,
                    at=at,
                    due_at=at - timedelta(seconds=rng.randrange(1, 30)) if k % 2 else None,
                    from_phase_index=k % 4 - 1,
                    to_phase_index=k % 4,
                    from_percentage=percentages[(k - 1) % 4],
                    to_percentage=percentages[k % 4],
                    reason=f"Event {n}",
                    dispatched_at=at,
                )
            )
        RolloutEvent.objects.bulk_create(events, batch_size=2000)
        audiences = [
            Audience.objects.create(name=name, kind=kind, timezone="UTC")
            for name, kind in (
                ("Customers", Audience.Kind.CUSTOMERS),
                ("Customer support", Audience.Kind.CUSTOMER_SUPPORT),
                ("Technical support", Audience.Kind.TECHNICAL_SUPPORT),
                ("Beta testers", Audience.Kind.BETA_TESTERS),
            )
        ]
        channels = [
            Channel.objects.create(
                audience=a, kind=Channel.Kind.WEBHOOK, name=f"{a.name} hook",
                url="http://127.0.0.1:9/hook", signing_secret=secrets.token_hex(16),
            )
            for a in audiences
        ]  # fmt: skip
        notice_states = list(Notice.State.values)
        notices = Notice.objects.bulk_create(
            (
                Notice(
                    audience=audiences[i % 4],
                    event="phase_started",
                    origin=Notice.Origin.PLAN,
                    rollout=rollouts[i % N_ROLLOUTS],
                    release=rollouts[i % N_ROLLOUTS].release,
                    subject=f"Notice {i}",
                    body=f"Body of notice {i}.",
                    rendered_subject=f"Notice {i}",
                    rendered_text=f"Body of notice {i}.",
                    rendered_html=f"<p>Body of notice {i}.</p>",
                    state=notice_states[i % len(notice_states)],
                    send_at=now - timedelta(hours=i),
                    created_at=now - timedelta(hours=i),
                    created_by=user,
                )
                for i in range(N_NOTICES)
            ),
            batch_size=1000,
        )
        delivery_states = list(Delivery.State.values)
        Delivery.objects.bulk_create(
            (
                Delivery(
                    notice=notice,
                    channel=channels[(i + d) % 4],
                    channel_kind=Channel.Kind.WEBHOOK,
                    channel_name=channels[(i + d) % 4].name,
                    state=delivery_states[(i + d) % len(delivery_states)],
                )
                for i, notice in enumerate(notices)
                for d in range(1 + i % 2)
            ),
            batch_size=1000,
        )
        by_rollout = {(p.rollout_id, p.order): p for p in phases}
        running = [r for r in rollouts if r.state == "running"][:N_APPROVALS]
        Approval.objects.bulk_create(
            Approval(
                rollout=r,
                phase=by_rollout[(r.id, r.current_phase_index + 1)],
                requested_by=other,
                requested_at=now - timedelta(hours=n),
                why="Production needs a second person.",
            )
            for n, r in enumerate(running)
        )
    detail = next(r for r in rollouts if r.state == "running")
    return {
        "flag": detail.flag.key,
        "rollout": detail.key,
        "environment": "production",
    }


def pages(keys: dict[str, Any]) -> dict[str, str]:
    return {
        "dashboard": "/",
        "flags list": "/flags/",
        "flag detail": f"/flags/{keys['flag']}/",
        "rollouts list": "/rollouts/",
        "rollout detail": f"/rollouts/{keys['rollout']}/",
        "releases list": "/rollouts/releases/",
        "calendar": "/rollouts/calendar/",
        "notices": "/comms/",
        "changelog": "/support/changelog",
        "customer lookup": (
            f"/support/lookup?user_id=user-42&environment={keys['environment']}&plan=pro"
        ),
        "approvals": "/rollouts/approvals/",
    }


def count_queries(urls: dict[str, str]) -> dict[str, tuple[int, int, int]]:
    """(status, queries, bytes) per page, in process, second request of each (warm caches)."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    out = {}
    for name, url in urls.items():
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        out[name] = (response.status_code, len(captured.captured_queries), len(response.content))
    return out


# --------------------------------------------------------------------------------------------
# Serving and timing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_cookie() -> str:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    return f"sessionid={client.cookies['sessionid'].value}"


def get(conn: http.client.HTTPConnection, url: str, cookie: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn.request("GET", url, headers={"Cookie": cookie, "Host": "127.0.0.1"})
    response = conn.getresponse()
    response.read()
    return response.status, (time.perf_counter() - start) * 1000


def time_pages(urls: dict[str, str], env: dict[str, str], requests: int, tmp: Path) -> dict:
    port = _free_port()
    server_env = {**os.environ, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=server_env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=(tmp / "gunicorn.log").open("wb"),
    )  # fmt: skip
    cookie = session_cookie()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status, _ = get(conn, "/healthz", cookie)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"gunicorn did not start: {tmp / 'gunicorn.log'}") from None
                time.sleep(0.3)
        for url in urls.values():  # warm both workers (imports, template loading)
            for _ in range(2):
                get(conn, url, cookie)
        times: dict[str, list[float]] = {name: [] for name in urls}
        statuses: dict[str, set[int]] = {name: set() for name in urls}
        for _ in range(requests):
            for name, url in urls.items():
                status, ms = get(conn, url, cookie)
                times[name].append(ms)
                statuses[name].add(status)
        return {"times": times, "statuses": statuses}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    requests = int(env_number("BENCH_PAGES_REQUESTS", 30, 10))
    keep = os.environ.get("BENCH_PAGES_KEEP") == "1"
    env = configure()
    import django

    fresh_database(env, keep=keep)
    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)
    from django.contrib.auth.models import User

    if keep and User.objects.filter(username=USERNAME).exists():
        from rollouts.models import Rollout

        detail = Rollout.objects.filter(key__startswith="bench-rollout-", state="running").first()
        assert detail is not None
        keys = {"flag": detail.flag.key, "rollout": detail.key, "environment": "production"}
        print("Pages: reusing the dataset (BENCH_PAGES_KEEP=1)")
    else:
        keys = generate()
    backend = "PostgreSQL" if env.get("BENCH_DB_NAME") else "SQLite"
    print(
        f"Pages: {N_FLAGS:,} flags, {N_RELEASES} releases, {N_ROLLOUTS} rollouts, "
        f"{N_EVENTS:,} events, {N_NOTICES:,} notices on {backend} (ready in "
        f"{time.perf_counter() - started:.0f} s); gunicorn 2 workers x 4 threads, DEBUG off; "
        f"{requests} requests per page, interleaved, one at a time, as a release manager",
        flush=True,
    )
    urls = pages(keys)
    counts = count_queries(urls)
    from django.db import connections

    connections.close_all()
    tmp = Path(tempfile.mkdtemp(prefix="rollcall-bench-pages-"))
    result = time_pages(urls, env, requests, tmp)
    print(f"\n{'page':16} {'status':>6} {'queries':>7} {'KB':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'max ms':>8}  p95 < {TARGET_P95_MS:.0f} ms")  # fmt: skip
    missed = []
    bad = []
    for name in urls:
        status, queries, size = counts[name]
        times = result["times"][name]
        p95 = percentile(times, 95)
        statuses = result["statuses"][name] | {status}
        if statuses != {200}:
            bad.append(f"{name} {sorted(statuses)}")
        ok = p95 < TARGET_P95_MS
        if not ok:
            missed.append(name)
        print(
            f"{name:16} {'/'.join(map(str, sorted(statuses))):>6} {queries:7d} {size / 1024:6.0f} "
            f"{percentile(times, 50):8.0f} {p95:8.0f} {max(times):8.0f}  {'yes' if ok else 'NO'}"
        )
    worst = max(urls, key=lambda n: percentile(result["times"][n], 95))
    print(
        f"\nPages: p95 under {TARGET_P95_MS:.0f} ms on {len(urls) - len(missed)} of {len(urls)} "
        f"pages; worst {worst} at {percentile(result['times'][worst], 95):.0f} ms "
        f"({percentile(result['times'][worst], 95) / TARGET_P95_MS:.2f}x the target)"
    )
    if bad:
        print(f"FAILED: pages answered other than 200: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
