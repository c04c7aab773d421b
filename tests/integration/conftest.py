"""Integration tier: real PostgreSQL, Redis and Celery processes started by the tests.

Needs DATABASE_URL (PostgreSQL) and REDIS_URL; `.ci/run` sets both. Tests here use
`transactional_db` so that the worker processes see committed rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _services_required(request):
    if "integration" not in request.keywords:
        return
    require_service(
        bool(os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))),
        "the integration tier needs DATABASE_URL pointing at PostgreSQL",
    )
    require_service(bool(os.environ.get("REDIS_URL")), "the integration tier needs REDIS_URL")


def _process_env() -> dict[str, str]:
    """Environment for child processes: same database (the test one), broker and queue."""
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER'] or ''}{':' + db['PASSWORD'] if db['PASSWORD'] else ''}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        CONN_MAX_AGE="0",
        CACHE_KEY_PREFIX=settings.CACHES["default"].get("KEY_PREFIX", ""),
        # The tests' receivers listen on 127.0.0.1 (core.outbound refuses loopback otherwise).
        ROLLCALL_OUTBOUND_ALLOW=",".join(settings.ROLLCALL_OUTBOUND_ALLOW),
    )
    return env


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None):
        log = self.tmp_path / f"{name}-{len(self.procs)}.log"
        env = _process_env()
        env.update(extra_env or {})
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((proc, log))
        return proc

    def worker(self, *extra: str, concurrency: int = 2, name: str = "worker"):
        return self.start(
            name,
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--without-mingle",
            "--without-gossip",
            f"--hostname={name}-{os.getpid()}-{len(self.procs)}@%h",
            *extra,
        )

    def beat(self, *, tick: int | None = None):
        """Celery beat; `tick` sets ROLLCALL_TICK_SECONDS (the sweep and heartbeat interval)."""
        schedule = self.tmp_path / "beat.pid"
        extra_env = {"ROLLCALL_TICK_SECONDS": str(tick)} if tick is not None else None
        return self.start(
            "beat",
            "beat",
            "--loglevel=INFO",
            "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
            f"--pidfile={schedule}",
            "--max-interval=1",
            extra_env=extra_env,
        )

    def kill(self, proc, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for _, log in self.procs)

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def celery_processes(transactional_db, tmp_path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture
def wait_for() -> Callable[..., object]:
    def wait(predicate: Callable[[], object], *, timeout: float = 60, what: str = "", logs=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        extra = f"\n{logs.logs()}" if logs is not None else ""
        raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")

    return wait
