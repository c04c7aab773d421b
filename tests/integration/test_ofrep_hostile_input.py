"""A real gunicorn worker survives every context value the engine must not see.

A lone UTF-16 surrogate (``"\\ud800"`` in JSON, or its raw CESU-8 bytes) used to reach
``mmh3.hash`` and kill the worker with SIGSEGV. Each such request must now answer 400
INVALID_CONTEXT, and a normal request afterwards must be answered by the same worker process:
no worker died or was restarted.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flags import services
from flags.models import Environment
from tests.conftest import clear_flag_caches
from tests.integration.conftest import ROOT, _process_env

FLAG = "checkout-rollout"

# (what it is, raw request body); raw bytes that are not UTF-8 fail on parse instead
NOT_UTF8 = {"raw CESU-8 bytes"}
HOSTILE_BODIES = [
    ("lone high surrogate as targetingKey", rb'{"context":{"targetingKey":"\ud800"}}'),
    ("lone low surrogate as targetingKey", rb'{"context":{"targetingKey":"user-\udfff"}}'),
    ("high surrogate before a letter", rb'{"context":{"targetingKey":"\udbffa"}}'),
    ("reversed pair", rb'{"context":{"targetingKey":"\ude00\ud83d"}}'),
    ("raw CESU-8 bytes", b'{"context":{"targetingKey":"\xed\xa0\x80"}}'),
    ("surrogate sessionId", rb'{"context":{"sessionId":"\ud800"}}'),
    ("surrogate userId", rb'{"context":{"userId":"\ud800"}}'),
    ("surrogate property value", rb'{"context":{"targetingKey":"u1","plan":"\ud800"}}'),
    ("surrogate property name", rb'{"context":{"targetingKey":"u1","\ud800":"x"}}'),
    ("surrogate remoteAddress", rb'{"context":{"targetingKey":"u1","remoteAddress":"\udc00"}}'),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _post(port: int, path: str, body: bytes, key: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture
def sdk_key(transactional_db) -> str:
    clear_flag_caches()
    env = Environment.objects.create(key="production", name="Production")
    _, raw_key = services.sdk_key_create(environment=env, name="hostile", actor=None)
    flag = services.flag_create(key=FLAG, name="Checkout", actor=None)
    rule = {
        "name": "flexibleRollout",
        "parameters": {"rollout": "50", "stickiness": "default", "groupId": FLAG},
        "constraints": [],
    }
    services.flag_state_update(flag=flag, environment=env, actor=None, enabled=True, rules=[rule])
    return raw_key


@pytest.fixture
def gunicorn(sdk_key, tmp_path):
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    env = _process_env()
    env.update(ALLOWED_HOSTS="127.0.0.1,localhost", DEBUG="False", SECRET_KEY="x" * 50 + "-test")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            _status, _ = _post(port, f"/ofrep/v1/evaluate/flags/{FLAG}", b"{}", sdk_key)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}") from None
            time.sleep(0.2)
    yield proc, port, log
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def test_gunicorn_worker__lone_surrogates_in_context__400_and_same_worker_answers(
    gunicorn, sdk_key
):
    proc, port, log = gunicorn
    workers = _children(proc.pid)
    assert len(workers) == 1

    for what, body in HOSTILE_BODIES:
        for path in (f"/ofrep/v1/evaluate/flags/{FLAG}", "/ofrep/v1/evaluate/flags"):
            status, answer = _post(port, path, body, sdk_key)
            assert status == 400, (what, path, answer)
            if what in NOT_UTF8:
                assert answer["errorCode"] == "PARSE_ERROR", (what, answer)
                continue
            assert answer["errorCode"] == "INVALID_CONTEXT", (what, answer)
            assert "surrogate" in answer["errorDetails"], (what, answer)

    status, answer = _post(
        port, f"/ofrep/v1/evaluate/flags/{FLAG}", b'{"context":{"targetingKey":"u1"}}', sdk_key
    )
    assert status == 200, answer
    assert answer["key"] == FLAG and isinstance(answer["value"], bool)
    assert proc.poll() is None
    assert _children(proc.pid) == workers, log.read_text()
    assert log.read_text().count("Booting worker") == 1, log.read_text()
