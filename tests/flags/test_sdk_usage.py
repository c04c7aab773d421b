"""SdkKey.last_used_at kept up to date in batches, and a displayed key that reveals nothing
secret."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flags import sdk_usage, services
from flags.models import SdkKey
from tests.flags.factories import EnvironmentFactory, SdkKeyFactory

pytestmark = pytest.mark.django_db

BULK = "/ofrep/v1/evaluate/flags"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(sdk_usage, "_clock", fake)
    return fake


def _updates(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and "last_used_at" in q["sql"]
    ]


def _evaluate(client, raw: str):
    return client.post(
        BULK, data={"context": {"targetingKey": "u1"}}, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )  # fmt: skip


def test_last_used_at__many_requests__one_batched_write_per_interval(client, clock, settings):
    settings.SDK_KEY_LAST_USED_FLUSH_SECONDS = 60
    key = SdkKeyFactory(environment=EnvironmentFactory(key="production"))
    other = SdkKeyFactory(environment=key.environment)
    assert key.last_used_at is None

    with CaptureQueriesContext(connection) as queries:
        for _ in range(25):
            assert _evaluate(client, key.raw).status_code == 200
            assert _evaluate(client, other.raw).status_code == 200
    # The first use is written at once; the other 49 only join the pending batch.
    assert len(_updates(queries)) == 1
    key.refresh_from_db()
    assert key.last_used_at is not None

    clock.now += 61
    with CaptureQueriesContext(connection) as queries:
        _evaluate(client, key.raw)
    assert len(_updates(queries)) == 1
    # One UPDATE wrote both keys used since the last flush.
    assert "IN" in _updates(queries)[0]
    other.refresh_from_db()
    assert other.last_used_at is not None


def test_last_used_at__refused_key__not_recorded(client, clock):
    key = SdkKeyFactory(environment=EnvironmentFactory(key="production"))
    assert _evaluate(client, key.raw + "x").status_code == 403
    sdk_usage.flush()
    key.refresh_from_db()
    assert key.last_used_at is None


def test_last_used_at__database_error__request_still_answers(client, clock, monkeypatch):
    key = SdkKeyFactory(environment=EnvironmentFactory(key="production"))

    from django.db.models.query import QuerySet

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(QuerySet, "update", broken)
    assert _evaluate(client, key.raw).status_code == 200
    monkeypatch.undo()
    # The ids stay pending and are written by the next flush.
    assert sdk_usage.flush() == 1


def test_sdk_key_masked__environment_and_public_id_only():
    env = EnvironmentFactory(key="qa")  # a short key used to leave 9 secret characters shown
    sdk_key, raw = services.sdk_key_create(environment=env, name="svc", actor=None)

    shown = sdk_key.masked
    assert shown == f"rc_qa_{sdk_key.prefix}_…"
    assert len(sdk_key.prefix) == SdkKey.PUBLIC_ID_LENGTH
    secret = raw.rsplit("_", 1)[1]
    assert len(secret) == 32
    assert raw.startswith(shown.rstrip("…"))
    assert secret[:4] not in shown


def test_sdk_key_masked__key_from_before_public_ids__environment_only():
    key = SdkKeyFactory(environment=EnvironmentFactory(key="qa"), raw="rc_qa_AbCdEfGhIjKlMnOp")
    key.prefix = ""  # what the migration leaves of the old secret-bearing prefix
    assert key.masked == "rc_qa_…"
    key.prefix = "rc_qa_AbCdEfGhIj"  # not migrated yet: still nothing secret shown
    assert key.masked == "rc_qa_…"
