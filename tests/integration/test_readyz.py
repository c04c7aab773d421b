import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django, json
django.setup()
from django.test import Client
r = Client().get('/readyz', HTTP_HOST='localhost')
print(json.dumps({'status': r.status_code, 'body': r.json()}))
"""


def _probe(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_readyz__real_services__ready(db):
    answer = _probe()
    assert answer["status"] == 200, answer
    assert answer["body"]["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz__database_unreachable__503_names_database(db):
    answer = _probe(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    assert answer["status"] == 503
    assert answer["body"]["checks"]["database"] == "failed"
    assert answer["body"]["checks"]["broker"] == "ok"
    assert "database" in answer["body"]["errors"]


def test_readyz__broker_unreachable__503_names_broker(db):
    answer = _probe(REDIS_URL="redis://127.0.0.1:1/0")
    assert answer["status"] == 503
    assert answer["body"]["checks"] == {"database": "ok", "broker": "failed"}
