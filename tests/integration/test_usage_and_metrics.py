"""SDK usage and Rollcall's own metrics with real clients:

- the Unleash Python SDK (UnleashClient) evaluates a flag and sends its metrics and
  registration to a live server: the counts and the app show up on the flag page;
- a real Prometheus (Debian package) scrapes Rollcall's `/metrics` and loads the shipped
  alert rules (`deploy/prometheus/rollcall-rules.yml`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import requests
from django.test import Client
from UnleashClient import UnleashClient

from flags import services as flag_services
from flags.models import ClientApplication, FlagUsage
from flags.services import sdk_key_create
from rollouts import services
from tests.integration import metrics_stack
from tests.integration.metrics_stack import prom_value, start_prometheus
from tests.rollouts.factories import EnvironmentFactory, make_rollout, soak_plan

ROOT = Path(__file__).resolve().parents[2]
exporter = metrics_stack.exporter  # fixtures
daemons = metrics_stack.daemons


def test_unleash_sdk__metrics_and_registration__counts_and_app_on_the_flag_page(
    transactional_db, live_server, wait_for, tmp_path, release_manager
):
    env = EnvironmentFactory(key="production", name="Production")
    flag = flag_services.flag_create(key="new-checkout", name="New checkout", actor=None)
    flag_services.flag_toggle(flag=flag, environment=env, enabled=True, actor=None)
    _, server_key = sdk_key_create(environment=env, name="checkout", actor=None)
    client = UnleashClient(
        url=live_server.url + "/api",
        app_name="checkout-service",
        instance_id="pod-1",
        refresh_interval=3600,
        metrics_interval=1,
        custom_headers={"Authorization": server_key},
        cache_directory=str(tmp_path / "unleash-cache"),
    )
    client.initialize_client()
    try:
        assert [client.is_enabled("new-checkout", {"userId": f"u{i}"}) for i in range(7)] == [
            True
        ] * 7
        wait_for(
            lambda: sum(u.yes for u in FlagUsage.objects.filter(flag_key="new-checkout")) >= 7,
            timeout=30,
            what="the SDK's metrics",
        )
    finally:
        client.destroy()
    app = ClientApplication.objects.get(app_name="checkout-service")
    assert app.instance_id == "pod-1"
    assert "unleash-client-python" in app.sdk_version
    browser = Client()
    browser.force_login(release_manager)
    html = browser.get("/flags/new-checkout/").content.decode()
    assert 'data-app="checkout-service"' in html
    assert 'data-usage-env="production"' in html
    assert "<td>7</td>" in html  # 7 yes answers


def test_prometheus__scrapes_rollcall_metrics_and_loads_the_shipped_rules(
    transactional_db, live_server, wait_for, exporter, daemons, tmp_path
):
    env = EnvironmentFactory(key="staging", name="Staging")
    rollout = make_rollout(environment=env, phases=soak_plan(10, 50, soak=timedelta(hours=1)))
    services.rollout_start(rollout=rollout, actor=None, source="ui")
    rules = (ROOT / "deploy/prometheus/rollcall-rules.yml").read_text()
    server = urlparse(live_server.url)
    prom, prom_url = start_prometheus(
        tmp_path,
        targets=[f"127.0.0.1:{exporter.port}"],
        rules=rules,
        extra_scrape=(
            "  - job_name: rollcall\n"
            "    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{server.hostname}:{server.port}']\n"
        ),
    )
    daemons.append(prom)
    wait_for(
        lambda: prom_value(prom_url, 'rollcall_rollouts{job="rollcall",state="running"}') == 1,
        timeout=60,
        what="Rollcall's metrics in Prometheus",
    )
    assert prom_value(prom_url, 'up{job="rollcall"}') == 1
    assert prom_value(prom_url, "rollcall_deliveries_dead") == 0
    groups = requests.get(f"{prom_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = {r["name"]: r["health"] for g in groups for r in g["rules"]}
    assert "RollcallSchedulerStale" in loaded and "RollcallRolloutBehindSchedule" in loaded
    wait_for(
        lambda: all(
            r["health"] == "ok"
            for g in requests.get(f"{prom_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            for r in g["rules"]
        ),
        timeout=30,
        what="every rule evaluated without error",
    )


def test_usage_add__writers_of_the_same_minute_race__every_count_kept(transactional_db):
    """Several processes flush counts for the same flags and minute at once (web workers'
    OFREP counts, SDK metrics posts): new rows are inserted once, nobody deadlocks, and the
    sums are exact. Threads here, each with its own PostgreSQL connection."""
    import threading
    from datetime import UTC, datetime

    from django.db import connection as main_connection
    from django.db import connections

    from flags import usage

    env = EnvironmentFactory(key="production", name="Production")
    minute = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    writers, rounds, n_flags = 4, 15, 30
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(w: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                # Each writer starts at another flag; the insert and the locks go in key order.
                keys = [f"flag-{(w * 7 + r + i) % n_flags:02d}" for i in range(n_flags)]
                counts = {(k, "", "", "ofrep"): (1, 2, {"v": 1}) for k in keys}
                usage.usage_add(environment_id=env.id, counts=counts, bucket=minute)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert main_connection.vendor == "postgresql"
    rows = list(FlagUsage.objects.filter(environment=env, bucket=minute))
    assert len(rows) == n_flags
    expected = writers * rounds
    assert {(r.yes, r.no, r.variants["v"]) for r in rows} == {(expected, 2 * expected, expected)}
