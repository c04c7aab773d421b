"""`make bench` keeps working: every bench runs to its end in a tiny configuration.

A bench that no longer runs (a security setting refusing its loopback receiver, a redirect
its plain-HTTP client did not expect) rotted unnoticed twice; these runs catch that. They
check that each bench completes, measures what it says (its correctness checks pass: answers
equal to UnleashClient's, no SQL per evaluation, every page 200, every rollout advanced, no
delivery lost) and prints its summary; the figures themselves are never asserted (a missed
target is a finding printed by the bench, not a test failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


def run_bench(name: str, *args: str, timeout: float = 600, **env: str) -> str:
    """Run `bench/<name>.py` as `make bench` would, with DATABASE_URL / REDIS_URL as given to
    the tests (each bench makes and drops its own database next to it)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
        cwd=ROOT,
        env={**os.environ, "BENCH_QUICK": "1", "PYTHONUNBUFFERED": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def test_engine_bench__runs_and_checks_answers_on_three_shapes():
    out = run_bench("engine", BENCH_ENGINE_ROUNDS="1", BENCH_ENGINE_SECONDS="0.02")
    assert out.count("answers equal to UnleashClient's on all 1,000 checked contexts") == 3
    assert "Rollcall / bare mmh3 call" in out
    assert "Engine ratios" in out


def test_ofrep_http_bench__runs_every_cell_with_no_query_per_evaluation():
    require_service(bool(shutil.which("wrk")), "the OFREP bench needs wrk (apt-get install wrk)")
    out = run_bench(
        "ofrep_http", BENCH_OFREP_SAMPLES="1", BENCH_OFREP_SECONDS="0.5", BENCH_OFREP_UNLEASH="0"
    )
    assert "SQL queries per evaluation once warm: 0 (must be 0)" in out
    assert "unleash-server: not measured (BENCH_OFREP_UNLEASH=0)" in out
    for cell in ("granian   Rollcall        single", "gunicorn  baseline        bulk"):
        assert cell in out
    assert "Usage counting cost" in out


def test_pages_bench__every_page_answers_200():
    out = run_bench("pages", BENCH_PAGES_REQUESTS="2")
    assert "Pages: p95 under 300 ms on" in out
    assert "of 11 pages" in out
    assert "FAILED" not in out


def test_scheduler_bench__real_beat_advances_every_rollout():
    out = run_bench(
        "scheduler",
        BENCH_SCHEDULER_ROLLOUTS="20",
        BENCH_SCHEDULER_SAMPLES="1",
        ROLLCALL_TICK_SECONDS="2",
    )
    assert "20 running rollouts" in out
    assert "1 worker(s): sweep -> last applied" in out
    assert "2 worker(s): sweep -> last applied" in out
    assert "goal (all 20 advanced within one 2 s tick" in out


def test_notices_bench__every_delivery_arrives_once():
    deliveries = 40
    out = run_bench("notices", f"--deliveries={deliveries}", "--channels=2")
    assert f"1 worker: {deliveries} deliveries" in out
    assert f"2 workers: {deliveries} deliveries" in out
    assert "none lost, none duplicated" in out
