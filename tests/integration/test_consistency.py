"""Consistency across real processes: a change made in one process answers everywhere in 1 s.

Both deployment shapes: the embedded default (SQLite file, local-memory cache, no Redis) and
PostgreSQL + Redis. Rollcall runs as deployed (gunicorn, 2 workers x 4 threads); changes come
from another process (a Django process running the services, like a command or a Celery
worker) and from the management API inside one gunicorn worker, while threads poll OFREP.

For each change, its staleness is the latest end of an OFREP answer that started after the
commit and still gave the old answer, minus the commit time (0 when none did). The test prints
the p100 per kind and shape (the README quotes them) and holds it to the 1 s bound.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import clear_flag_caches
from tests.integration.conftest import ROOT, _process_env

BOUND_SECONDS = 1.0
POLLERS = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    shape: str
    url: str
    changer: subprocess.Popen[str]
    web: subprocess.Popen[bytes] | None = None
    setup: dict[str, Any] = field(default_factory=dict)

    def stop_web(self) -> None:
        """Stop gunicorn as a deployment does (SIGTERM: workers finish and exit cleanly)."""
        if self.web is not None and self.web.poll() is None:
            os.killpg(self.web.pid, 15)
            self.web.wait(timeout=30)

    def change(self, action: str, **args: Any) -> float:
        assert self.changer.stdin is not None and self.changer.stdout is not None
        self.changer.stdin.write(json.dumps({"action": action, **args}) + "\n")
        self.changer.stdin.flush()
        line = self.changer.stdout.readline()
        assert line, f"the changer process died ({action})"
        answer = json.loads(line)
        self.setup.update({k: v for k, v in answer.items() if k != "committed_at"})
        return float(answer["committed_at"])


def _environment(shape: str, tmp_path: Path) -> dict[str, str]:
    env = _process_env()
    env.update(
        DEBUG="False",
        # Served over plain HTTP here (in production TLS ends at a proxy in front).
        SECURE_SSL_REDIRECT="False",
        SESSION_COOKIE_SECURE="False",
        CSRF_COOKIE_SECURE="False",
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        # OFREP usage counts are written every second (test_ofrep_usage_served.py waits for it).
        FLAGS_USAGE_FLUSH_SECONDS="1",
    )
    if shape == "embedded":
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CACHE_KEY_PREFIX"):
            env.pop(name, None)
        env["SQLITE_PATH"] = str(tmp_path / "rollcall.sqlite3")
        env["CELERY_BROKER_URL"] = "memory://"
    return env


@pytest.fixture(params=["embedded", "postgres+redis"])
def deployment(request, transactional_db, tmp_path) -> Iterator[Deployment]:
    clear_flag_caches()
    shape = request.param
    env = _environment(shape, tmp_path)
    if shape == "embedded":
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True, timeout=600,
        )  # fmt: skip
    log = (tmp_path / "changer.log").open("w")
    changer = subprocess.Popen(
        [sys.executable, "-u", str(Path(__file__).with_name("consistency_changer.py"))],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    port = _free_port()
    web_log = (tmp_path / "gunicorn.log").open("w")
    web = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--graceful-timeout", "5"],
        cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deployment = Deployment(shape=shape, url=f"http://127.0.0.1:{port}", changer=changer, web=web)
    try:
        assert changer.stdout is not None
        ready = changer.stdout.readline()
        assert ready, (tmp_path / "changer.log").read_text()
        deployment.change("setup")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(deployment.url + "/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.2)
        yield deployment
    finally:
        if changer.stdin is not None:
            changer.stdin.close()
        changer.wait(timeout=30)
        deployment.stop_web()


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    body: dict[str, Any]


class Pollers:
    """Threads asking OFREP again and again (a new connection each time: both workers answer)."""

    def __init__(self, url: str, request: Callable[[int], tuple[str, dict[str, Any], str]]):
        self.url = url
        self.request = request
        self.answers: list[Answer] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(POLLERS)]

    def _run(self, index: int) -> None:
        n = 0
        while not self.stop.is_set():
            path, body, key = self.request(index * 100_000 + n)
            n += 1
            started = time.time()
            response = requests.post(
                self.url + path,
                json=body,
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                timeout=10,
            )
            ended = time.time()
            answer = Answer(started, ended, response.status_code, response.json())
            with self.lock:
                self.answers.append(answer)

    def __enter__(self) -> Pollers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def since(self, moment: float) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.started >= moment]


def _staleness(answers: list[Answer], committed_at: float, stale: Callable[[Answer], bool]):
    late = [a.ended - committed_at for a in answers if a.started >= committed_at and stale(a)]
    return max(late, default=0.0)


def _settle() -> None:
    time.sleep(BOUND_SECONDS * 1.5)  # let every answer after the change come in


def test_staleness__changes_from_other_processes__answered_everywhere_within_one_second(
    deployment: Deployment,
):
    setup = deployment.setup
    key = setup["keys"][0]
    figures: dict[str, list[float]] = {
        "toggle (API, in one web worker)": [],
        "toggle (other process)": [],
        "phase change": [],
        "new flag": [],
        "key revocation": [],
    }

    # Toggles: half through the management API (a change made inside one gunicorn worker),
    # half from the other process.
    def toggle_probe(n: int):
        return "/ofrep/v1/evaluate/flags/checkout", {"context": {"targetingKey": f"u{n}"}}, key

    with Pollers(deployment.url, toggle_probe) as pollers:
        enabled = True
        for trial in range(8):
            time.sleep(0.3 + 0.13 * trial)  # land at different points of the check interval
            enabled = not enabled
            if trial % 2:
                committed = deployment.change("toggle", flag="checkout", enabled=enabled)
                kind = "toggle (other process)"
            else:
                response = requests.post(
                    f"{deployment.url}/api/v1/flags/checkout/environments/production/toggle/",
                    json={"enabled": enabled},
                    headers={"Authorization": f"Token {setup['token']}"},
                    timeout=10,
                )
                assert response.status_code == 200, response.text
                committed = time.time()
                kind = "toggle (API, in one web worker)"
            _settle()
            wanted = enabled
            figures[kind].append(
                _staleness(
                    pollers.since(committed),
                    committed,
                    lambda a, w=wanted: a.body.get("value") != w,
                )
            )

    # A phase change and a rollback of a canary (users outside 1% flip to true, then back).
    def canary_probe(n: int):
        return "/ofrep/v1/evaluate/flags/search-canary", {"context": {"targetingKey": f"u{n}"}}, key

    with Pollers(deployment.url, canary_probe) as pollers:
        time.sleep(0.5)
        committed = deployment.change("advance", rollout=setup["rollout"])
        _settle()
        figures["phase change"].append(
            _staleness(
                pollers.since(committed), committed, lambda a: a.body.get("value") is not True
            )
        )
        committed = deployment.change("rollback", rollout=setup["rollout"])
        _settle()
        figures["phase change"].append(
            _staleness(pollers.since(committed), committed, lambda a: a.body.get("value") is True)
        )

    # New flags: never "not found" after the commit, nor after one answer found it.
    current = {"flag": "new-0"}

    def new_flag_probe(n: int):
        return (
            f"/ofrep/v1/evaluate/flags/{current['flag']}",
            {"context": {"targetingKey": f"u{n}"}},
            key,
        )

    with Pollers(deployment.url, new_flag_probe) as pollers:
        for trial in range(3):
            current["flag"] = f"new-{trial}"
            time.sleep(0.4 + 0.2 * trial)
            committed = deployment.change("create_flag", flag=current["flag"])
            _settle()
            answers = [a for a in pollers.since(0) if a.body.get("key") == current["flag"]]
            answers = answers or pollers.since(committed)
            figures["new flag"].append(_staleness(answers, committed, lambda a: a.status == 404))
            found = [a.ended for a in answers if a.status == 200]
            assert found, f"{current['flag']} never answered"
            regressions = [a for a in answers if a.status == 404 and a.started > min(found)]
            assert regressions == [], f"{current['flag']}: FLAG_NOT_FOUND after it was served"

    # Key revocation: every process refuses the key within the bound.
    for index in (1, 2):
        revoked_key = setup["keys"][index]

        def key_probe(n: int, raw=revoked_key):
            return "/ofrep/v1/evaluate/flags/checkout", {"context": {"targetingKey": f"u{n}"}}, raw

        with Pollers(deployment.url, key_probe) as pollers:
            time.sleep(0.5 + 0.25 * index)
            committed = deployment.change("revoke", key_id=setup["key_ids"][index])
            _settle()
            figures["key revocation"].append(
                _staleness(pollers.since(committed), committed, lambda a: a.status != 403)
            )

    report = {kind: round(max(values), 3) for kind, values in figures.items()}
    print(f"\nstaleness p100 (s), {deployment.shape}: {json.dumps(report)}")
    assert all(values for values in figures.values())
    assert max(report.values()) <= BOUND_SECONDS, report
