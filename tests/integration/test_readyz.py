import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The probe asks as an admin (a superuser object: no database needed to be one), who sees
# which check failed; anonymous callers get the status only.
PROBE = """
import django, json, sys
from types import SimpleNamespace
django.setup()
from django.test import RequestFactory
from core.views import readyz
request = RequestFactory().get('/readyz', HTTP_HOST='localhost')
admin = SimpleNamespace(is_authenticated=True, is_superuser=True)
request.user = admin if sys.argv[1] == 'admin' else SimpleNamespace(is_authenticated=False)
r = readyz(request)
print(json.dumps({'status': r.status_code, 'body': json.loads(r.content)}))
"""


def _probe(who: str = "admin", **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, who],
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


def test_readyz__database_unreachable__anonymous_sees_status_only(db):
    answer = _probe("anonymous", DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere")
    assert answer == {"status": 503, "body": {"status": "not ready"}}
