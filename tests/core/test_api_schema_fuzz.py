"""Property-based API test: schemathesis generates requests from the OpenAPI schema and every
answer must be something other than a server error (bad input gets a 4xx with a message)."""

from __future__ import annotations

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
