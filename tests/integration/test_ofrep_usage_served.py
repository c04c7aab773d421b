"""OFREP usage counting as deployed: gunicorn (2 workers x 4 threads) counts the answers it
gives to the real OpenFeature OFREP provider and to bulk requests, writes them from its
background flush every `FLAGS_USAGE_FLUSH_SECONDS` (1 s here) and the rest when it stops;
another process reads exactly what was answered. Both deployment shapes: the embedded default
(SQLite file, no Redis) and PostgreSQL + Redis.
"""

from __future__ import annotations

import time

import requests
from openfeature import api as openfeature_api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext

from tests.integration.test_consistency import Deployment, deployment  # noqa: F401 - fixture

SINGLE = 20
BULK = 10


def test_ofrep_usage__served_answers_counted_flushed_and_written_at_stop(
    deployment: Deployment,  # noqa: F811 - the fixture imported above
) -> None:
    raw_key = deployment.setup["keys"][0]
    provider = OFREPProvider(
        deployment.url, headers_factory=lambda: {"Authorization": f"Bearer {raw_key}"}
    )
    openfeature_api.set_provider(provider, "usage")
    client = openfeature_api.get_client("usage")
    singles = 0

    def ask_single() -> None:
        nonlocal singles
        details = client.get_boolean_details(
            "checkout", False, EvaluationContext(targeting_key=f"user-{singles}")
        )
        assert (details.value, details.error_code) == (True, None)
        singles += 1

    try:
        for _ in range(SINGLE):
            ask_single()
        bulk_seen: dict[str, int] = {}
        for i in range(BULK):
            response = requests.post(
                f"{deployment.url}/ofrep/v1/evaluate/flags",
                json={"context": {"targetingKey": f"bulk-user-{i}"}},
                headers={"Authorization": f"Bearer {raw_key}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            for answer in response.json()["flags"]:
                bulk_seen[answer["key"]] = bulk_seen.get(answer["key"], 0) + 1
        assert bulk_seen == {"checkout": BULK, "search-canary": BULK}

        # The periodic flush: a request after the interval hands the counts to a thread.
        written: dict[str, list[int]] = {}
        deadline = time.monotonic() + 30
        while not written and time.monotonic() < deadline:
            time.sleep(1.2)
            ask_single()
            time.sleep(0.5)
            deployment.change("usage")
            written = deployment.setup["usage"]
        assert written, "no OFREP usage written by the running web processes within 30 s"
    finally:
        openfeature_api.clear_providers()

    # Stopping the web processes writes what they still hold: every answer, exactly once.
    deployment.stop_web()
    deployment.change("usage")
    usage = deployment.setup["usage"]
    assert usage["checkout"] == [singles + BULK, 0]
    assert sum(usage["search-canary"]) == BULK
