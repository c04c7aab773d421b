"""Real Prometheus and Alertmanager (Debian packages) for the integration tier, each started on
a free port with its own temporary directory, and a small exporter whose error rate a test
flips: every scrape counts 100 more requests of a service, `error_share` of them 500s.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import require_service

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Exporter:
    """`http_requests_total{code=...,flag=...}` counters that grow on every scrape."""

    def __init__(self, flag: str = "") -> None:
        self.flag = flag
        self.error_share = 0.0
        self.ok = 0
        self.errors = 0
        self.lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.scrape().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def scrape(self) -> str:
        with self.lock:
            bad = round(100 * self.error_share)
            self.errors += bad
            self.ok += 100 - bad
            flag = self.flag
            return (
                "# HELP http_requests_total Requests served.\n"
                "# TYPE http_requests_total counter\n"
                f'http_requests_total{{code="200",flag="{flag}"}} {self.ok}\n'
                f'http_requests_total{{code="500",flag="{flag}"}} {self.errors}\n'
            )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Daemon:
    def __init__(self, args: list[str], log: Path, ready_url: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            args, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{args[0]} exited:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(ready_url, timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{args[0]} not ready:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_prometheus(
    tmp: Path,
    *,
    targets: list[str],
    rules: str = "",
    alertmanager: str = "",
    extra_scrape: str = "",
) -> tuple[Daemon, str]:
    """A Prometheus scraping `targets` every second (rules evaluated every second)."""
    port = free_port()
    rule_files = ""
    if rules:
        (tmp / "rules.yml").write_text(rules)
        rule_files = f"rule_files:\n  - {tmp / 'rules.yml'}\n"
    alerting = ""
    if alertmanager:
        alerting = (
            "alerting:\n  alertmanagers:\n    - static_configs:\n"
            f"        - targets: ['{alertmanager}']\n"
        )
    targets_yaml = ", ".join(f"'{t}'" for t in targets)
    (tmp / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + rule_files
        + alerting
        + "scrape_configs:\n"
        + f"  - job_name: service\n    static_configs:\n      - targets: [{targets_yaml}]\n"
        + extra_scrape
    )
    (tmp / "prom-data").mkdir()
    daemon = Daemon(
        [
            str(PROMETHEUS),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--rules.alert.resend-delay=1s",
        ],
        tmp / "prometheus.log",
        f"http://127.0.0.1:{port}/-/ready",
    )
    return daemon, f"http://127.0.0.1:{port}"


def start_alertmanager(tmp: Path, *, webhook_url: str, bearer: str) -> tuple[Daemon, str]:
    port = free_port()
    (tmp / "alertmanager.yml").write_text(
        "route:\n"
        "  receiver: rollcall\n"
        "  group_by: ['alertname']\n"
        "  group_wait: 0s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: rollcall\n"
        "    webhook_configs:\n"
        f"      - url: {webhook_url}\n"
        "        send_resolved: true\n"
        "        http_config:\n"
        "          authorization:\n"
        "            type: Bearer\n"
        f"            credentials: {bearer}\n"
    )
    (tmp / "am-data").mkdir()
    daemon = Daemon(
        [
            str(ALERTMANAGER),
            f"--config.file={tmp / 'alertmanager.yml'}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp / "alertmanager.log",
        f"http://127.0.0.1:{port}/-/ready",
    )
    return daemon, f"127.0.0.1:{port}"


def prom_value(url: str, query: str) -> float | None:
    body = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
    result = body.get("data", {}).get("result") or []
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    require_service(PROMETHEUS.exists(), "the Debian package prometheus is not installed")
    exp = Exporter()
    yield exp
    exp.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    running: list[Daemon] = []
    yield running
    for d in running:
        d.stop()
