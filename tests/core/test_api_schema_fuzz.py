"""Property-based API test: schemathesis generates requests from the OpenAPI schema and every
answer must be something other than a server error (bad input gets a 4xx with a message)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from config.wsgi import application


def _api_schema() -> dict:
    # /api/schema/ needs a signed-in user; at import time there is no database for one, so
    # the same document is generated directly.
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(_api_schema())
schema.app = application


@pytest.fixture
def admin_token(admin_user_role):
    # Like django.test.Client: a request must not close the test's database connection
    # (which holds the test transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield Token.objects.create(user=admin_user_role).key
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api__generated_requests__never_a_server_error(case, admin_token):
    case.headers = {**(case.headers or {}), "Authorization": f"Token {admin_token}"}
    response = case.call(headers={"Host": "localhost"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])


def _operations_with_a_body() -> list[tuple[str, str]]:
    return [
        (path, method)
        for path, item in schema.raw_schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]


HOSTILE_BODIES = {
    "nested": ('{"name": ' + "[" * 50_000 + "]" * 50_000 + "}", 400, "nested more than"),
    "nested-just-too-deep": ('{"name": ' + "[" * 64 + "]" * 64 + "}", 400, "nested more than"),
    "huge": ('{"name": "' + "x" * 3_000_000 + '"}', 413, "larger than"),
    "utf-16": ('{"name": "wide"}'.encode("utf-16"), 400, "UTF-8"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", sorted(HOSTILE_BODIES))
def test_api__every_operation_with_a_body__hostile_body_4xx_with_a_message(admin_token, kind):
    from django.test import Client

    body, status, message = HOSTILE_BODIES[kind]
    client = Client(HTTP_AUTHORIZATION=f"Token {admin_token}")
    operations = _operations_with_a_body()
    assert len(operations) > 20
    for path, method in operations:
        url = re.sub(r"\{[^}]+\}", "1", path)
        response = getattr(client, method)(url, body, content_type="application/json")
        assert response.status_code < 500, (method, path, response.content[:300])
        if "{" not in path:
            # Nothing to look up first: the body is read and refused.
            assert response.status_code == status, (method, path, response.content[:300])
            assert message in response.json()["message"], (method, path)
