import pytest
from django.urls import reverse

from core.selectors import SCHEDULER_HEARTBEAT
from core.services import heartbeat_record


def test_healthz__always_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz__database_and_broker_reachable__ready(admin_client_role):
    response = admin_client_role.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readyz__broker_unreachable__503_names_broker(admin_client_role, settings):
    from config.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = admin_client_role.get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "broker": "failed"}
    assert "broker" in body["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["anonymous", "support"])
def test_readyz__not_an_admin__status_only_without_error_text(client, support_user, who):
    from config.celery import app

    if who == "support":
        client.force_login(support_user)
    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    assert response.json() == {"status": "not ready"}


@pytest.mark.django_db
def test_api_schema_and_docs__anonymous__refused(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code in {401, 403}
    assert b"openapi" not in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 302
    assert docs.url.startswith(reverse("login"))


def test_dashboard__anonymous__redirects_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_dashboard__no_heartbeat__warns_scheduler_not_running(rm_client):
    response = rm_client.get("/")
    assert response.status_code == 200
    assert b"Scheduler has not run yet" in response.content


def test_dashboard__recent_heartbeat__shows_age(rm_client):
    heartbeat_record(name=SCHEDULER_HEARTBEAT)
    response = rm_client.get("/")
    assert b"Scheduler last ran" in response.content
    assert b"check the Celery worker" not in response.content


def test_dashboard__htmx_poll__renders_only_scheduler_partial(rm_client):
    response = rm_client.get("/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert 'id="scheduler-status"' in html
    assert "<html" not in html


def test_login_page__renders_labelled_form(client, db):
    response = client.get(reverse("login"))
    html = response.content.decode()
    assert '<label for="id_username">' in html
    assert '<label for="id_password">' in html


def test_login__demo_style_credentials__logs_in(client, release_manager):
    response = client.post(reverse("login"), {"username": "remy", "password": "pw-remy"})
    assert response.status_code == 302
    assert response.url == reverse("home")
    assert client.get(reverse("home")).url == reverse("dashboard")


def test_home__support__lands_on_changelog(support_client):
    response = support_client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url == reverse("support:changelog")


def test_api_schema__served(rm_client):
    response = rm_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content


def test_api_docs__offline_swagger_ui(rm_client):
    response = rm_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


def test_dashboard__status_poll__runs_no_panel_queries(rm_client, django_assert_max_num_queries):
    # session, user, heartbeat, and the navigation's permissions + roles (3): no panels.
    with django_assert_max_num_queries(6):
        response = rm_client.get("/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="scheduler-status")
    assert response.status_code == 200


def test_htmx_request__session_expired__client_redirect_to_login(client, db):
    response = client.get("/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("path", "json_body"), [("/api/v1/flags/", True), ("/flags/x/details/", False)]
)
def test_data_error__answered_400_with_a_message(rf, db, path, json_body):
    from django.db import DataError

    from core.middleware import DataErrorMiddleware

    middleware = DataErrorMiddleware(lambda request: None)
    response = middleware.process_exception(rf.post(path), DataError("NUL (0x00) bytes"))
    assert response.status_code == 400
    assert b"cannot store" in response.content
    assert (response["Content-Type"] == "application/json") is json_body


def test_data_error_middleware__other_exceptions__left_to_django(rf):
    from core.middleware import DataErrorMiddleware

    middleware = DataErrorMiddleware(lambda request: None)
    assert middleware.process_exception(rf.get("/"), ValueError("boom")) is None


def test_api__model_validation_error__400_with_fields(admin_client_role):
    response = admin_client_role.post(
        "/api/v1/environments/",
        {"key": "k" * 200, "name": "Too long"},
        content_type="application/json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert "key" in body["fields"]
