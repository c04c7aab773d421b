"""OFREP over HTTP: Rollcall (Django) against a bare WSGI baseline, in one run.

Run from the repository root: ``.venv/bin/python bench/ofrep_http.py [--duration S]``.

1. Migrates a throwaway SQLite database (or uses ``DATABASE_URL`` when set: the bench then adds
   its own environment, ``bench-<pid>``, and removes it at the end), creates an environment,
   an SDK key and 50 flags with rules (rollouts, constraints, segments, variants).
2. Counts SQL queries per evaluation once warm, in process (Django test client +
   ``CaptureQueriesContext``); it must be 0 (the bench fails otherwise).
3. Serves three WSGI apps with the same server settings, one at a time: Rollcall as deployed
   (``config.wsgi``: OFREP skips the middleware, see ``flags/machine_wsgi.py``), the same
   views through Django's whole middleware stack (``full_stack_app``), and the baseline
   (``baseline_app``: the same JSON parse, SDK-key check and ``flags.engine`` evaluation, no
   Django). Servers: gunicorn, 2 workers x 4 threads (gthread), and granian (2 workers x 4
   blocking threads) when installed.
4. Drives each with 8 keep-alive connections for ``--duration`` seconds per endpoint (``wrk``
   when installed, e.g. ``apt-get install wrk``; otherwise 8 Python client processes) on
   single-flag and bulk evaluation, each request with another user, and prints req/s,
   p50/p99 latency and the ratios Rollcall / baseline.

The DESIGN's reference for unleash-server's evaluating endpoint on this kind of machine is
~650 req/s (not measured here: it needs Node and PostgreSQL).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 8
N_FLAGS = 50
SINGLE_FLAG = "flag-07"
UNLEASH_SERVER_REFERENCE = 650.0
TARGET_VS_UNLEASH = 5.0


# --------------------------------------------------------------------------------------------
# The baseline: a bare WSGI app doing the same work as the OFREP views, without Django.

_BASELINE: dict[str, Any] = {}


def _baseline_state() -> dict[str, Any]:
    if not _BASELINE:
        sys.path.insert(0, str(ROOT))
        from flags import engine

        with open(os.environ["ROLLCALL_BENCH_STATE"], encoding="utf-8") as fh:
            state = json.load(fh)
        _BASELINE.update(
            engine=engine,
            snapshot=engine.compile_snapshot(state),
            keys={os.environ["ROLLCALL_BENCH_KEY_HASH"]},
            types={
                f["name"]: f.get("rollcall", {}).get("valueType", "boolean")
                for f in state["features"]
            },
        )
    return _BASELINE


def _baseline_result(base: dict[str, Any], key: str, ctx: dict[str, Any]) -> dict[str, Any]:
    ev = base["snapshot"].evaluate(key, ctx)
    metadata = {}
    if ev.payload is not None:
        metadata = {"payloadType": ev.payload.get("type"), "payload": ev.payload.get("value")}
    return {
        "key": key,
        "value": ev.enabled,
        "reason": ev.reason,
        "variant": ev.variant,
        "metadata": metadata,
    }


def baseline_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    base = _baseline_state()
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if hashlib.sha256(auth.removeprefix("Bearer ").encode()).hexdigest() not in base["keys"]:
        start_response("403 Forbidden", [("Content-Type", "application/json")])
        return [b'{"errorCode":"GENERAL"}']
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = json.loads(environ["wsgi.input"].read(length) or b"{}")
    ctx = base["engine"].context_from_ofrep(data.get("context") or {})
    path = environ.get("PATH_INFO", "")
    if path == "/ofrep/v1/evaluate/flags":
        body = {"flags": [_baseline_result(base, k, ctx) for k in base["snapshot"].flag_keys]}
    else:
        body = _baseline_result(base, path.rsplit("/", 1)[-1], ctx)
    payload = json.dumps(body, separators=(",", ":")).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Access-Control-Allow-Origin", "*"),
        ],
    )
    return [payload]


_FULL: list[Any] = []
_FULL_LOCK = threading.Lock()


def full_stack_app(environ: dict[str, Any], start_response: Any) -> Any:
    """Rollcall through Django's whole middleware stack (what config.wsgi avoids for OFREP)."""
    if not _FULL:
        with _FULL_LOCK:
            if not _FULL:
                from django.core.wsgi import get_wsgi_application

                _FULL.append(get_wsgi_application())
    return _FULL[0](environ, start_response)


# --------------------------------------------------------------------------------------------
# Setup


def _environment(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="False",
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    if not env.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(tmp / "bench.sqlite3")
    return env


def _rules(i: int, segment_id: int) -> list[dict[str, Any]]:
    plans = {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]}
    version = {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": "2.0.0"}
    rollout = {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(10 + (i * 7) % 90), "stickiness": "userId"},
    }
    kind = i % 5
    if kind == 0:
        return [rollout]
    if kind == 1:
        return [{**rollout, "constraints": [plans]}]
    if kind == 2:
        return [
            {"name": "default", "segments": [segment_id]},
            {**rollout, "constraints": [version]},
        ]
    if kind == 3:
        variants = [
            {"name": "a", "weight": 500, "weightType": "variable", "stickiness": "userId"},
            {"name": "b", "weight": 500, "weightType": "variable", "stickiness": "userId"},
        ]
        return [{**rollout, "constraints": [plans, version], "variants": variants}]
    return [{"name": "userWithId", "parameters": {"userIds": "user-1,user-2,user-3"}}]


def setup(env_key: str) -> tuple[str, dict[str, Any]]:
    """Migrate, create the data; returns (raw SDK key, client state). Django in process."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.db import transaction

    from flags import services
    from flags.selectors import environment_client_state

    with transaction.atomic():
        environment = services.environment_create(key=env_key, name="Bench", actor=None)
        _, raw = services.sdk_key_create(environment=environment, name="bench", actor=None)
        segment = services.segment_create(
            name=f"Bench beta {env_key}",
            actor=None,
            constraints=[
                {
                    "contextName": "userId",
                    "operator": "IN",
                    "values": [f"user-{i}" for i in range(50)],
                }
            ],
        )
        for i in range(N_FLAGS):
            flag = services.flag_create(key=f"{env_key}-flag-{i:02d}", name=f"Flag {i}", actor=None)
            services.flag_state_update(
                flag=flag,
                environment=environment,
                actor=None,
                enabled=True,
                rules=_rules(i, segment.id),
            )
    environment.refresh_from_db()
    return raw, environment_client_state(environment)


def cleanup(env_key: str) -> None:
    from flags.models import Environment, Flag, Segment

    Flag.objects.filter(key__startswith=f"{env_key}-flag-").delete()
    Segment.objects.filter(name=f"Bench beta {env_key}").delete()
    Environment.objects.filter(key=env_key).delete()


def queries_per_evaluation(raw_key: str, flag: str) -> float:
    """SQL queries per OFREP request once warm, through config.wsgi (what the servers run)."""
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from config.wsgi import application

    factory = RequestFactory()

    def call(path: str, user: str) -> int:
        body = json.dumps({"context": {"targetingKey": user, "plan": "pro"}})
        request = factory.post(
            path, body, "application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
        )
        status: list[int] = []
        b"".join(application(request.environ, lambda s, h, e=None: status.append(int(s[:3]))))
        return status[0]

    assert call(f"/ofrep/v1/evaluate/flags/{flag}", "warm") == 200
    n = 100
    with CaptureQueriesContext(connection) as captured:
        for i in range(n):
            assert call(f"/ofrep/v1/evaluate/flags/{flag}", f"user-{i}") == 200
            assert call("/ofrep/v1/evaluate/flags", f"user-{i}") == 200
    return len(captured.captured_queries) / (2 * n)


# --------------------------------------------------------------------------------------------
# Servers and load


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_command(server: str, app: str, port: int) -> list[str]:
    if server == "gunicorn":
        return [
            sys.executable, "-m", "gunicorn", app,
            "--workers", "2", "--threads", "4", "--worker-class", "gthread",
            "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "30",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "granian", app, "--interface", "wsgi",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
        "--blocking-threads", "4", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def _wait_ready(port: int, raw_key: str, flag: str, proc: subprocess.Popen[bytes]) -> None:
    import http.client

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            for _ in range(20):  # reach every worker, warm its snapshot
                conn.request(
                    "POST",
                    f"/ofrep/v1/evaluate/flags/{flag}",
                    body=json.dumps({"context": {"targetingKey": "warm"}}),
                    headers={
                        "Authorization": f"Bearer {raw_key}",
                        "Content-Type": "application/json",
                    },
                )
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"warm-up answered {response.status}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            return
        except (ConnectionError, OSError):
            time.sleep(0.2)
    raise RuntimeError("server did not start in 30 s")


_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"context":{"targetingKey":"user-' .. (counter %% 997) ..
               '","plan":"pro","appVersion":"2.1.0"}}'
  return wrk.format(nil, "%(path)s", nil, body)
end
"""


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _load_wrk(port: int, path: str, raw_key: str, duration: float, tmp: Path) -> dict[str, float]:
    script = tmp / "ofrep.lua"
    script.write_text(_LUA % {"key": raw_key, "path": path})
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(duration)}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _client_loop(args: tuple[int, str, str, float, int]) -> tuple[int, int, list[float]]:
    import http.client

    port, path, raw_key, duration, seed = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    i = seed
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        i += 1
        body = json.dumps(
            {"context": {"targetingKey": f"user-{i % 997}", "plan": "pro", "appVersion": "2.1.0"}}
        )
        start = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        errors += response.status != 200
    conn.close()
    return len(latencies), errors, latencies


def _load_python(port: int, path: str, raw_key: str, duration: float) -> dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(CONNECTIONS) as pool:
        started = time.perf_counter()
        results = pool.map(
            _client_loop, [(port, path, raw_key, duration, n * 1000) for n in range(CONNECTIONS)]
        )
        elapsed = time.perf_counter() - started
    latencies = sorted(x for _, _, lat in results for x in lat)
    count = sum(n for n, _, _ in results)
    return {
        "rps": count / max(elapsed, duration),
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "errors": float(sum(e for _, e, _ in results)),
    }


def run_target(
    server: str, app: str, env: dict[str, str], raw_key: str, flag: str, duration: float, tmp: Path
) -> dict[str, dict[str, float]]:
    port = _free_port()
    proc = subprocess.Popen(
        _server_command(server, app, port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / f"{server}-{app.replace(':', '_')}.log").open("wb"),
        start_new_session=True,
    )
    try:
        _wait_ready(port, raw_key, flag, proc)
        results = {}
        for name, path in (
            ("single", f"/ofrep/v1/evaluate/flags/{flag}"),
            ("bulk", "/ofrep/v1/evaluate/flags"),
        ):
            if shutil.which("wrk"):
                results[name] = _load_wrk(port, path, raw_key, duration, tmp)
            else:
                results[name] = _load_python(port, path, raw_key, duration)
        return results
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rollcall-bench-"))
    env = _environment(tmp)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    env_key = f"bench-{os.getpid()}"
    started = time.monotonic()
    raw_key, state = setup(env_key)
    flag = f"{env_key}-{SINGLE_FLAG}"
    state_path = tmp / "state.json"
    state_path.write_text(json.dumps(state))
    env.update(
        ROLLCALL_BENCH_STATE=str(state_path),
        ROLLCALL_BENCH_KEY_HASH=hashlib.sha256(raw_key.encode()).hexdigest(),
    )
    queries = queries_per_evaluation(raw_key, flag)
    driver = "wrk (2 threads)" if shutil.which("wrk") else "8 Python client processes"
    print(f"OFREP over HTTP: {N_FLAGS} flags, {CONNECTIONS} keep-alive connections, {driver}, "
          f"{args.duration:g} s per measurement, {os.cpu_count()} cores")  # fmt: skip
    print(f"SQL queries per evaluation once warm: {queries:g} (must be 0)")

    servers = ["gunicorn"]
    try:
        import granian  # noqa: F401

        servers.append("granian")
    except ImportError:
        print("granian is not installed: measuring gunicorn only.")
    apps = {
        "Rollcall": "config.wsgi:application",
        "full-mw": "bench.ofrep_http:full_stack_app",
        "baseline": "bench.ofrep_http:baseline_app",
    }
    rows: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    try:
        for server in servers:
            for label, app in apps.items():
                rows[(server, label)] = run_target(
                    server, app, env, raw_key, flag, args.duration, tmp
                )
    finally:
        cleanup(env_key)
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, servers)
    print(f"Total bench time: {time.monotonic() - started:.0f} s")
    failed = queries != 0 or any(r["errors"] for res in rows.values() for r in res.values())
    if failed:
        print("FAILED: queries per evaluation must be 0 and every request must succeed.")
    return 1 if failed else 0


def report(rows: dict[tuple[str, str], dict[str, dict[str, float]]], servers: list[str]) -> None:
    print("\nRollcall = config.wsgi (OFREP skips the middleware); full-mw = the same views through")
    print("Django's whole middleware stack; baseline = bare WSGI, same JSON + engine work.\n")
    header = ("server", "app", "endpoint", "req/s", "p50 ms", "p99 ms", "errors")
    print("{:9} {:9} {:8} {:>8} {:>8} {:>8} {:>7}".format(*header))
    for (server, label), results in rows.items():
        for endpoint, r in results.items():
            print(
                f"{server:9} {label:9} {endpoint:8} {r['rps']:8.0f} {r['p50']:8.2f} "
                f"{r['p99']:8.2f} {r['errors']:7.0f}"
            )
    print("\nRatios to the baseline (throughput; p99 latency):")
    for server in servers:
        for endpoint in ("single", "bulk"):
            base = rows[(server, "baseline")][endpoint]
            for label in ("Rollcall", "full-mw"):
                ours = rows[(server, label)][endpoint]
                print(
                    f"  {server:9} {endpoint:7} {label:9} {ours['rps'] / base['rps']:.2f}x req/s, "
                    f"p99 {ours['p99'] / base['p99']:.2f}x"
                )
    best = max(rows[(s, "Rollcall")]["single"]["rps"] for s in servers)
    print(
        f"Rollcall single-flag best: {best:.0f} req/s = {best / UNLEASH_SERVER_REFERENCE:.1f}x "
        f"the ~{UNLEASH_SERVER_REFERENCE:.0f} req/s reference of unleash-server "
        f"(target {TARGET_VS_UNLEASH:g}x)"
    )


if __name__ == "__main__":
    sys.exit(main())
