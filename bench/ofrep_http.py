"""OFREP over HTTP: Rollcall against a bare WSGI baseline (and unleash-server), interleaved.

Run from the repository root: ``.venv/bin/python bench/ofrep_http.py`` (``BENCH_QUICK=1`` for
a short run; ``BENCH_OFREP_SAMPLES`` / ``BENCH_OFREP_SECONDS`` override the defaults).

1. A database of the bench's own (``<name>_bench_ofrep`` next to DATABASE_URL's database,
   else a temporary SQLite file), migrated; 50 flags (rollouts, constraints, segments,
   variants) imported in Unleash's client-API format with ``manage.py flags_import`` and an SDK
   key made with ``manage.py sdk_key_create``. The baseline gets the same flags from Rollcall's
   own ``/api/client/features``.
2. SQL queries per evaluation once warm, in process (``config.wsgi``, CaptureQueriesContext):
   it must be 0 (the bench fails otherwise); the shared change check of ``flags.freshness``
   (one tiny query at most every ``FLAGS_SNAPSHOT_TTL`` seconds without Redis) is not counted.
3. Servers, all started first and kept running: gunicorn (2 workers x 4 threads, gthread) and
   granian (2 workers x 4 blocking threads) when installed, each serving Rollcall as deployed
   (``config.wsgi:application``) and the baseline (``baseline_app``: a bare WSGI handler doing
   the same SDK-key check, JSON parse, ``flags.engine`` context conversion and evaluation and
   JSON answer, no Django). unleash-server 6.x (npm, installed into ``var/bench/unleash-server``
   at bench time, its own PostgreSQL database, the same flags created through its admin API)
   when it can be installed and started (``BENCH_OFREP_UNLEASH=0`` skips it); otherwise the
   bench prints why it was not measured.
   Rollcall runs twice per server: as deployed, and with ``FLAGS_USAGE_OFREP=false``; the
   ratio of the two is what counting OFREP evaluations for the usage pages costs
   (``BENCH_OFREP_FOCUS=counting`` measures only that pair, for more samples in less time),
   judged on capacity: requests per CPU second of the server's processes (read from
   ``/proc`` around each sample), printed next to req/s.
4. Load: wrk, 8 keep-alive connections, 2 threads, each request another user; single-flag and
   bulk evaluation. ``samples`` rounds; in each round every cell (server x app x endpoint) gets
   one ``seconds`` sample, one cell after another (interleaved). Printed: req/s and p99 as
   median (min-max) over samples, and Rollcall / baseline as the median (min-max) of the
   per-round ratios (same server, same endpoint, same round).

Targets: Rollcall >= 0.5x the bare handler under granian, >= 5x unleash-server (issue 15);
usage counting costs under 10% of throughput (>= 0.9x of the same server without it, issue 16).
"""

from __future__ import annotations

import hashlib
import http.client
import json
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
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stats import env_number, median, ratio_spread, spread  # noqa: E402

CONNECTIONS = 8
N_FLAGS = 50
SINGLE_FLAG = "bench-flag-07"
TARGET_VS_BASELINE = 0.5
TARGET_VS_UNLEASH = 5.0
# Issue 16: usage counting costs under 10% of throughput, judged on capacity (requests per
# server CPU second): wrk, PostgreSQL and the server share 2 cores, so req/s alone moves by
# more than 10% between neighbouring samples of the same server.
TARGET_COUNTING = 0.9
NO_COUNTING = "Rollcall-nocount"
ENV_KEY = "bench"
UNLEASH_DIR = ROOT / "var" / "bench" / "unleash-server"
UNLEASH_VERSION = "6"
UNLEASH_FRONTEND_TOKEN = "default:development.rollcall-bench-frontend-token"
UNLEASH_ADMIN_TOKEN = "*:*.rollcall-bench-admin-token"


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


def _admin_sql(url: str, sql: str) -> None:
    import psycopg

    admin = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


def _own_database(base: str, suffix: str) -> str:
    """A fresh PostgreSQL database next to `base`'s: returns its URL."""
    parts = urlparse(base)
    name = f"{parts.path.lstrip('/') or 'rollcall'}_bench_{suffix}"
    _admin_sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_sql(base, f'CREATE DATABASE "{name}"')
    return urlunparse(parts._replace(path=f"/{name}"))


def _drop_database(url: str) -> None:
    name = urlparse(url).path.lstrip("/")
    _admin_sql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _environment(tmp: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="False",
        SECURE_SSL_REDIRECT="False",  # the bench speaks plain HTTP to 127.0.0.1
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url,
        CACHE_KEY_PREFIX=f"bench-ofrep-{os.getpid()}",
    )
    if not database_url:
        env["SQLITE_PATH"] = str(tmp / "bench.sqlite3")
    return env


def _strategies(i: int) -> list[dict[str, Any]]:
    plans = {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]}
    version = {"contextName": "appVersion", "operator": "SEMVER_GT", "value": "2.0.0"}
    rollout = {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(10 + (i * 7) % 90), "stickiness": "userId"},
        "constraints": [],
    }
    kind = i % 5
    if kind == 0:
        return [rollout]
    if kind == 1:
        return [{**rollout, "constraints": [plans]}]
    if kind == 2:
        return [
            {"name": "default", "parameters": {}, "constraints": [], "segments": [1]},
            {**rollout, "constraints": [version]},
        ]
    if kind == 3:
        variants = [
            {"name": "a", "weight": 500, "weightType": "variable", "stickiness": "userId"},
            {"name": "b", "weight": 500, "weightType": "variable", "stickiness": "userId"},
        ]
        return [{**rollout, "constraints": [plans, version], "variants": variants}]
    return [
        {"name": "userWithId", "parameters": {"userIds": "user-1,user-2,user-3"}, "constraints": []}
    ]


def flags_document() -> dict[str, Any]:
    """The bench's flags in Unleash's client-API format (what Rollcall imports)."""
    return {
        "version": 2,
        "features": [
            {
                "name": f"bench-flag-{i:02d}",
                "type": "release",
                "enabled": True,
                "strategies": _strategies(i),
                "variants": [],
            }
            for i in range(N_FLAGS)
        ],
        "segments": [
            {
                "id": 1,
                "name": "Bench beta",
                "constraints": [
                    {
                        "contextName": "userId",
                        "operator": "IN",
                        "values": [f"user-{i}" for i in range(50)],
                    }
                ],
            }
        ],
    }


def setup(tmp: Path) -> tuple[str, dict[str, Any]]:
    """Migrate, import the flags; returns (raw SDK key, the state Rollcall serves to SDKs)."""
    import django
    from django.core.management import call_command

    django.setup()
    from django.test import Client

    call_command("migrate", verbosity=0, interactive=False)
    document = tmp / "flags.json"
    document.write_text(json.dumps(flags_document()))
    call_command("flags_import", str(document), environment=ENV_KEY, create=True, stdout=StringIO())
    out = StringIO()
    call_command("sdk_key_create", environment=ENV_KEY, name="bench", stdout=out, stderr=StringIO())
    raw = out.getvalue().strip().splitlines()[-1].strip()
    response = Client().get("/api/client/features", HTTP_AUTHORIZATION=raw)
    assert response.status_code == 200, response.status_code
    return raw, response.json()


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
    from flags.freshness import VERSIONS_QUERY_MARK

    # The shared change check (at most one per FLAGS_SNAPSHOT_TTL per process) is not per request.
    per_request = [q for q in captured.captured_queries if VERSIONS_QUERY_MARK not in q["sql"]]
    return len(per_request) / (2 * n)


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


class Target:
    """One running server: how to reach it and what one request looks like."""

    def __init__(self, label: str, proc: subprocess.Popen[bytes], port: int) -> None:
        self.label, self.proc, self.port = label, proc, port
        self.method = "POST"
        self.headers: dict[str, str] = {}
        self.paths: dict[str, str] = {}
        self.body = ""  # a Lua expression of the request body

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's processes (its session)."""
        return session_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def session_cpu_seconds(session: int) -> float:
    """User + system CPU seconds of every live process in a session (Linux /proc)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == session:  # fields[0] is field 3 (state) of proc(5)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


_OFREP_BODY = (
    '\'{"context":{"targetingKey":"user-\' .. (counter % 997) .. '
    '\'","plan":"pro","appVersion":"2.1.0"}}\''
)
_UNLEASH_BODY = (
    '\'{"userId":"user-\' .. (counter % 997) .. '
    '\'","properties":{"plan":"pro","appVersion":"2.1.0"}}\''
)


def _request_once(target: Target, path: str) -> int:
    body = _OFREP_BODY if target.body == "ofrep" else _UNLEASH_BODY
    payload = body.replace("' .. (counter % 997) .. '", "7").strip("'").replace("\\", "")
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        conn.request(target.method, path, body=payload, headers=target.headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _wait_ready(target: Target, timeout: float = 60) -> None:
    path = next(iter(target.paths.values()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(f"{target.label} exited with {target.proc.returncode}")
        try:
            for _ in range(20):  # reach every worker, warm its snapshot
                status = _request_once(target, path)
                if status != 200:
                    raise RuntimeError(f"{target.label}: warm-up answered {status}")
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{target.label} did not start in {timeout:.0f} s")


def start_python_server(
    server: str, label: str, app: str, env: dict[str, str], raw_key: str, tmp: Path
) -> Target:
    port = _free_port()
    proc = subprocess.Popen(
        _server_command(server, app, port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=(tmp / f"{server}-{label}.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    target = Target(f"{server} {label}", proc, port)
    target.headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    target.paths = {
        "single": f"/ofrep/v1/evaluate/flags/{SINGLE_FLAG}",
        "bulk": "/ofrep/v1/evaluate/flags",
    }
    target.body = "ofrep"
    try:
        _wait_ready(target)
    except Exception:
        target.stop()
        raise
    return target


_LUA = """
wrk.method = "%(method)s"
%(headers)s
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "%(path)s", nil, %(body)s)
end
"""


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def load(target: Target, endpoint: str, seconds: float, tmp: Path) -> dict[str, float]:
    path = target.paths[endpoint]
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items())
    body = _OFREP_BODY if target.body == "ofrep" else _UNLEASH_BODY
    script = tmp / "load.lua"
    script.write_text(_LUA % {"method": target.method, "headers": headers, "path": path,
                              "body": body})  # fmt: skip
    cpu_before = target.cpu_seconds()
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{target.port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu = target.cpu_seconds() - cpu_before
    if "Latency Distribution" not in out:
        raise RuntimeError(f"wrk printed no latency distribution:\n{out}")
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
        # The server's CPU per answered request: what a request costs the server, whatever
        # else (wrk, PostgreSQL) competes for the same cores.
        "cpu_us": cpu * 1e6 / max(done, 1),
    }


# --------------------------------------------------------------------------------------------
# unleash-server (npm), side by side when it can be installed and started


def _unleash_install() -> Path:
    entry = UNLEASH_DIR / "node_modules" / "unleash-server"
    if entry.exists():
        return entry
    if not shutil.which("npm") or not shutil.which("node"):
        raise RuntimeError("node/npm not found")
    UNLEASH_DIR.mkdir(parents=True, exist_ok=True)
    # Its own package.json: without one, npm would install into the repository's node_modules.
    package = UNLEASH_DIR / "package.json"
    if not package.exists():
        package.write_text('{"name": "rollcall-bench-unleash", "private": true}\n')
    result = subprocess.run(
        ["npm", "install", "--prefix", str(UNLEASH_DIR), "--no-audit", "--no-fund",
         "--loglevel=error", f"unleash-server@{UNLEASH_VERSION}"],
        cwd=UNLEASH_DIR, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if result.returncode or not entry.exists():
        last = (result.stderr.strip().splitlines() or ["npm install failed"])[-1]
        raise RuntimeError(f"npm install unleash-server@{UNLEASH_VERSION} failed: {last[:200]}")
    return entry


_UNLEASH_MAIN = """
const unleash = require('unleash-server');
unleash.start({
  db: { connectionString: process.env.BENCH_UNLEASH_DB, ssl: false, pool: { min: 0, max: 8 } },
  server: { port: Number(process.env.BENCH_UNLEASH_PORT) },
  authentication: {
    initApiTokens: [
      { type: 'admin', tokenName: 'bench-admin', secret: process.env.BENCH_UNLEASH_ADMIN,
        project: '*', environment: '*' },
      { type: 'frontend', tokenName: 'bench-frontend', secret: process.env.BENCH_UNLEASH_FRONTEND,
        project: 'default', environment: 'development' },
    ],
  },
  logLevel: 'error',
  getLogger: undefined,
}).catch((err) => { console.error(err); process.exit(1); });
"""


def _unleash_api(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": UNLEASH_ADMIN_TOKEN, "Content-Type": "application/json"}
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        conn.close()


def _unleash_load_flags(port: int) -> None:
    """The bench's flags in unleash-server's development environment, via its admin API."""
    doc = flags_document()
    builtin = {"userId", "sessionId", "remoteAddress", "appName", "environment", "currentTime"}
    fields = {
        c["contextName"]
        for f in doc["features"]
        for s in f["strategies"]
        for c in s.get("constraints") or []
    } - builtin
    for name in sorted(fields):  # custom context fields must exist before constraints use them
        status, data = _unleash_api(port, "POST", "/api/admin/context", {"name": name})
        if status >= 300 and status != 409:
            raise RuntimeError(f"creating context field {name} answered {status}: {data}")
    segment_ids: dict[int, int] = {}
    for segment in doc["segments"]:
        status, data = _unleash_api(
            port, "POST", "/api/admin/segments",
            {"name": segment["name"], "constraints": segment["constraints"]},
        )  # fmt: skip
        if status >= 300:
            raise RuntimeError(f"creating a segment answered {status}: {str(data)[:200]}")
        segment_ids[segment["id"]] = data["id"]
    base = "/api/admin/projects/default/features"
    for feature in doc["features"]:
        name = feature["name"]
        status, data = _unleash_api(port, "POST", base, {"name": name, "type": "release"})
        if status >= 300:
            raise RuntimeError(f"creating {name} answered {status}: {str(data)[:200]}")
        for strategy in feature["strategies"]:
            body = {
                "name": strategy["name"],
                "parameters": strategy.get("parameters") or {},
                "constraints": strategy.get("constraints") or [],
                "segments": [segment_ids[s] for s in strategy.get("segments") or []],
                "variants": strategy.get("variants") or [],
            }
            status, data = _unleash_api(
                port, "POST", f"{base}/{name}/environments/development/strategies", body
            )
            if status >= 300:
                raise RuntimeError(f"a strategy of {name} answered {status}: {str(data)[:200]}")
        status, data = _unleash_api(port, "POST", f"{base}/{name}/environments/development/on")
        if status >= 300:
            raise RuntimeError(f"enabling {name} answered {status}: {str(data)[:200]}")


def start_unleash(base_url: str, tmp: Path) -> tuple[Target, str, str]:
    """(target, its database URL, version) or RuntimeError with the reason."""
    if not base_url.startswith(("postgres://", "postgresql://")):
        raise RuntimeError("it needs PostgreSQL: set DATABASE_URL")
    entry = _unleash_install()
    version = json.loads((entry / "package.json").read_text())["version"]
    if not version.startswith(f"{UNLEASH_VERSION}."):
        raise RuntimeError(f"installed unleash-server is {version}, not {UNLEASH_VERSION}.x")
    db_url = _own_database(base_url, "unleash")
    main = UNLEASH_DIR / "bench-main.js"
    main.write_text(_UNLEASH_MAIN)
    port = _free_port()
    env = {
        **os.environ,
        "BENCH_UNLEASH_DB": db_url,
        "BENCH_UNLEASH_PORT": str(port),
        "BENCH_UNLEASH_ADMIN": UNLEASH_ADMIN_TOKEN,
        "BENCH_UNLEASH_FRONTEND": UNLEASH_FRONTEND_TOKEN,
        "NODE_ENV": "production",
    }
    proc = subprocess.Popen(
        ["node", str(main)], cwd=UNLEASH_DIR, env=env, stdout=subprocess.DEVNULL,
        stderr=(tmp / "unleash.log").open("wb"), start_new_session=True,
    )  # fmt: skip
    target = Target(f"unleash-server {version}", proc, port)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                tail = (tmp / "unleash.log").read_text(errors="replace").strip()[-200:]
                raise RuntimeError(f"unleash-server exited ({proc.returncode}): {tail}")
            try:
                if _unleash_api(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("unleash-server did not answer /health in 180 s")
            time.sleep(1)
        _unleash_load_flags(port)
        # The frontend API evaluates every enabled flag of the token's environment for the
        # posted context (unleash-server's evaluating endpoint): the bulk equivalent.
        target.headers = {
            "Authorization": UNLEASH_FRONTEND_TOKEN,
            "Content-Type": "application/json",
        }
        target.paths = {"bulk": "/api/frontend"}
        target.body = "unleash"
        _wait_ready(target, timeout=60)
        return target, db_url, version
    except Exception:
        target.stop()
        _drop_database(db_url)
        raise


# --------------------------------------------------------------------------------------------


def main() -> int:
    samples = int(env_number("BENCH_OFREP_SAMPLES", 5, 2))
    seconds = env_number("BENCH_OFREP_SECONDS", 5, 2)
    if not shutil.which("wrk"):
        print("ofrep_http: not measured (wrk is not installed: apt-get install wrk)")
        return 0
    # BENCH_OFREP_FOCUS=counting: only Rollcall with and without usage counting (more samples
    # of that one comparison in the same time).
    counting_only = os.environ.get("BENCH_OFREP_FOCUS") == "counting"
    tmp = Path(tempfile.mkdtemp(prefix="rollcall-bench-ofrep-"))
    base_url = os.environ.get("DATABASE_URL", "")
    on_postgres = base_url.startswith(("postgres://", "postgresql://"))
    db_url = _own_database(base_url, "ofrep") if on_postgres else ""
    env = _environment(tmp, db_url)
    os.environ.update(env)
    started = time.monotonic()
    targets: dict[tuple[str, str], Target] = {}
    unleash_db = ""
    try:
        raw_key, state = setup(tmp)
        state_path = tmp / "state.json"
        state_path.write_text(json.dumps(state))
        env.update(
            ROLLCALL_BENCH_STATE=str(state_path),
            ROLLCALL_BENCH_KEY_HASH=hashlib.sha256(raw_key.encode()).hexdigest(),
        )
        queries = queries_per_evaluation(raw_key, SINGLE_FLAG)
        from flags import usage

        usage._take()  # this process's own evaluations are not usage (its database goes away)
        from django.db import connections

        connections.close_all()
        servers = ["gunicorn"]
        try:
            import granian  # noqa: F401

            servers.append("granian")
        except ImportError:
            print("granian is not installed: measuring gunicorn only.")
        rollcall = "config.wsgi:application"
        apps = {
            "Rollcall": (rollcall, env),
            # The same deployment with OFREP usage counting switched off: what counting costs.
            NO_COUNTING: (rollcall, {**env, "FLAGS_USAGE_OFREP": "false"}),
            "baseline": ("bench.ofrep_http:baseline_app", env),
        }
        if counting_only:
            del apps["baseline"]
        for server in servers:
            for label, (app, app_env) in apps.items():
                targets[(server, label)] = start_python_server(
                    server, label, app, app_env, raw_key, tmp
                )
        unleash_note = ""
        try:
            if counting_only:
                raise RuntimeError("BENCH_OFREP_FOCUS=counting")
            if os.environ.get("BENCH_OFREP_UNLEASH", "1") == "0":
                raise RuntimeError("BENCH_OFREP_UNLEASH=0")
            unleash, unleash_db, version = start_unleash(base_url, tmp)
            targets[("node", "unleash-server")] = unleash
            unleash_note = f"unleash-server {version} (npm, its own PostgreSQL database)"
        except Exception as exc:
            unleash_note = f"unleash-server: not measured ({str(exc).splitlines()[0][:300]})"
        print(
            f"OFREP over HTTP: {N_FLAGS} flags, wrk {CONNECTIONS} connections, {samples} "
            f"interleaved samples x {seconds:g} s per cell, {os.cpu_count()} cores, "
            f"{'PostgreSQL' if on_postgres else 'SQLite'}; load average at start "
            f"{os.getloadavg()[0]:.1f}"
        )
        print(f"SQL queries per evaluation once warm: {queries:g} (must be 0)")
        print(unleash_note, flush=True)
        cells = [(key, endpoint) for key, target in targets.items() for endpoint in target.paths]
        results: dict[tuple[tuple[str, str], str], list[dict[str, float]]] = {c: [] for c in cells}
        for r in range(samples):
            order = cells[r % len(cells) :] + cells[: r % len(cells)]
            for key, endpoint in order:
                results[(key, endpoint)].append(load(targets[key], endpoint, seconds, tmp))
        report(results, servers, queries, with_baseline=not counting_only)
        failed = queries != 0 or any(s["errors"] for rs in results.values() for s in rs)
        print(f"Total bench time: {time.monotonic() - started:.0f} s; load average now "
              f"{os.getloadavg()[0]:.1f}")  # fmt: skip
        if failed:
            print("FAILED: queries per evaluation must be 0 and every request must succeed.")
        return 1 if failed else 0
    finally:
        for target in targets.values():
            target.stop()
        from django.db import connections

        connections.close_all()
        if unleash_db:
            _drop_database(unleash_db)
        if db_url:
            _drop_database(db_url)
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    results: dict[tuple[tuple[str, str], str], list[dict[str, float]]],
    servers: list[str],
    queries: float,
    *,
    with_baseline: bool = True,
) -> None:
    print("\nRollcall = config.wsgi as deployed; baseline = bare WSGI, same JSON + engine work.")
    print(f"\n{'server':9} {'app':15} {'endpoint':8} {'req/s median (min-max)':>30} "
          f"{'p99 ms median (min-max)':>28} {'server CPU us/req':>24} "
          f"{'errors':>6}")  # fmt: skip
    for ((server, label), endpoint), rs in results.items():
        print(
            f"{server:9} {label:15} {endpoint:8} {spread([s['rps'] for s in rs]):>30} "
            f"{spread([s['p99'] for s in rs], '{:.2f}'):>28} "
            f"{spread([s['cpu_us'] for s in rs], '{:.0f}'):>24} {sum(s['errors'] for s in rs):6.0f}"
        )
    if with_baseline:
        print("\nRollcall / baseline, median (min-max) of per-round ratios:")
    for server in servers if with_baseline else ():
        for endpoint in ("single", "bulk"):
            ours = results[((server, "Rollcall"), endpoint)]
            base = results[((server, "baseline"), endpoint)]
            rps = [a["rps"] / b["rps"] for a, b in zip(ours, base, strict=True)]
            p99 = [a["p99"] / b["p99"] for a, b in zip(ours, base, strict=True)]
            target = ""
            if server == "granian":
                met = median(rps) >= TARGET_VS_BASELINE
                target = f"  (target >= {TARGET_VS_BASELINE:g}x: {'met' if met else 'MISSED'})"
            print(f"  {server:9} {endpoint:7} req/s {ratio_spread(rps):>22}, "
                  f"p99 {ratio_spread(p99):>22}{target}")  # fmt: skip
    print("\nUsage counting cost: Rollcall (counting on) / Rollcall (FLAGS_USAGE_OFREP=false), "
          "median (min-max) of per-round ratios; capacity = requests per server CPU second "
          "(the target), req/s as wrk saw it on the shared cores:")  # fmt: skip
    for server in servers:
        for endpoint in ("single", "bulk"):
            ours = results[((server, "Rollcall"), endpoint)]
            off = results[((server, NO_COUNTING), endpoint)]
            rps = [a["rps"] / b["rps"] for a, b in zip(ours, off, strict=True)]
            capacity = [b["cpu_us"] / a["cpu_us"] for a, b in zip(ours, off, strict=True)]
            met = median(capacity) >= TARGET_COUNTING
            print(f"  {server:9} {endpoint:7} capacity {ratio_spread(capacity):>22}  "
                  f"(target >= {TARGET_COUNTING:g}x: {'met' if met else 'MISSED'}); "
                  f"req/s {ratio_spread(rps)}")  # fmt: skip
    unleash = results.get((("node", "unleash-server"), "bulk"))
    if unleash:
        print("\nRollcall bulk / unleash-server frontend API (all flags for one context), "
              "per-round ratios:")  # fmt: skip
        for server in servers:
            ours = results[((server, "Rollcall"), "bulk")]
            rps = [a["rps"] / b["rps"] for a, b in zip(ours, unleash, strict=True)]
            met = median(rps) >= TARGET_VS_UNLEASH
            print(f"  {server:9} req/s {ratio_spread(rps):>22}  "
                  f"(target >= {TARGET_VS_UNLEASH:g}x: {'met' if met else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
