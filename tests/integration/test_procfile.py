"""`make run`'s process set (honcho + the Procfile as shipped): a worker killed with SIGKILL is
started again and leaves the web server serving; Ctrl-C (SIGINT to honcho) stops everything."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from tests.integration.conftest import ROOT, _process_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (ppid, cmdline)
    return found


def _descendants(root: int) -> dict[int, str]:
    table = _processes()
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmd) in table.items():
            if ppid == parent and pid not in out:
                out[pid] = cmd
                frontier.append(pid)
    return out


def _worker_main(honcho: int) -> int | None:
    """The Celery worker's main process: started by the keep-running wrapper of `worker`."""
    tree = _descendants(honcho)
    for pid, cmd in tree.items():
        if "celery -A config worker" in cmd and "keep-running" not in cmd:
            parent = _processes().get(pid, (0, ""))[0]
            if "keep-running worker" in tree.get(parent, ""):
                return pid
    return None


def _web_ok(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_procfile__worker_killed__restarted_web_keeps_serving__ctrl_c_stops_all(
    transactional_db, wait_for, tmp_path
):
    port = _free_port()
    env = _process_env()
    env["PORT"] = str(port)
    log = tmp_path / "honcho.log"
    honcho = subprocess.Popen(
        [str(ROOT / ".venv/bin/honcho"), "start", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip

    class Logs:
        def logs(self) -> str:
            return log.read_text()[-6000:]

    try:
        wait_for(lambda: _web_ok(port), timeout=90, what="the web server", logs=Logs())
        first = wait_for(lambda: _worker_main(honcho.pid), timeout=60, what="the worker")

        os.kill(first, signal.SIGKILL)

        second = wait_for(
            lambda: (pid := _worker_main(honcho.pid)) not in (None, first) and pid,
            timeout=60, what="the worker to be started again", logs=Logs(),
        )  # fmt: skip
        assert second != first
        assert honcho.poll() is None  # the set is still running ...
        assert _web_ok(port)  # ... and the web server still answers
        assert "keep-running[worker]: exited with code -9; starting it again" in log.read_text()
        tree = _descendants(honcho.pid)

        honcho.send_signal(signal.SIGINT)  # what Ctrl-C does
        honcho.wait(timeout=30)
        time.sleep(0.5)
        left = set(tree) & set(_processes())
        assert not left, f"still running after Ctrl-C: {[tree[p] for p in left]}"
    finally:
        if honcho.poll() is None:
            for pid in _descendants(honcho.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            honcho.kill()
            honcho.wait()
