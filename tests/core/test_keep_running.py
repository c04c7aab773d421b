"""bin/keep-running: the restart loop each Procfile line runs under (`make run`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bin" / "keep-running")


def run(*command: str, **kwargs):
    env = {**os.environ, "KEEP_RUNNING_FIRST_PAUSE": "0.01"}
    return subprocess.Popen(
        [sys.executable, SCRIPT, "job", "--", *command],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )  # fmt: skip


def test_keep_running__command_keeps_crashing__restarts_then_gives_up_with_message(tmp_path):
    marker = tmp_path / "runs"
    proc = run("sh", "-c", f"echo x >> {marker}; exit 3")
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 1
    assert marker.read_text().count("x") == 6  # the first run and 5 restarts
    text = err.decode()
    assert "keep-running[job]: exited with code 3; starting it again" in text
    assert "exited with code 3 6 times within 60 s; giving up" in text


def test_keep_running__sigterm__passed_on_and_exits_cleanly(tmp_path):
    ready = tmp_path / "ready"
    proc = run("sh", "-c", f"trap 'exit 0' TERM; touch {ready}; while :; do sleep 0.1; done")
    while not ready.exists():  # wait for the command to be up (not a timing assumption)
        assert proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)

    assert proc.returncode == 0
    assert b"starting it again" not in err


def test_keep_running__no_command__usage_and_error():
    proc = subprocess.run([sys.executable, SCRIPT, "job"], capture_output=True, timeout=30)
    assert proc.returncode == 2
    assert b"keep-running NAME -- COMMAND" in proc.stderr
