"""What a first-time user meets around the pages: the navigation, the login page, 404s and
a quiet log (no raw e-mails, no tracebacks for a refused action)."""

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.test import override_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_navigation__release_manager__releases_approvals_and_lookup_linked(rm_client):
    html = rm_client.get(reverse("rollouts:releases")).content.decode()
    nav = html.split('aria-label="Main"', 1)[1].split("</nav>", 1)[0]
    for label, url in (
        ("Releases", "/rollouts/releases/"),
        ("Approvals", "/rollouts/approvals/"),
        ("Customer lookup", "/support/lookup"),
    ):
        assert f'href="{url}"' in nav and label in nav
    # Only the most specific entry is current: Releases, not Rollouts.
    assert nav.count('aria-current="page"') == 1
    assert 'href="/rollouts/releases/" aria-current="page"' in nav


def test_login__support_from_the_dashboard_address__lands_on_the_changelog(client, support_user):
    support_user.set_password("pw-12345678")
    support_user.save()
    response = client.post(
        reverse("login"),
        {"username": support_user.username, "password": "pw-12345678", "next": "/"},
    )
    assert response.status_code == 302
    assert client.get(response.url).url == reverse("support:changelog")


def test_login__explicit_destination__kept(client, support_user):
    support_user.set_password("pw-12345678")
    support_user.save()
    response = client.post(
        reverse("login"),
        {"username": support_user.username, "password": "pw-12345678", "next": "/support/lookup"},
    )
    assert response.url == "/support/lookup"


@override_settings(DEMO_MODE=True)
def test_login_page__demo_mode_with_demo_users__names_them(client):
    from django.core.management import call_command

    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    html = client.get(reverse("login")).content.decode()
    hint = html.split('id="demo-hint"', 1)[1]
    assert "<code>release</code>" in hint and "<code>support</code>" in hint
    assert "rollcall-demo" in hint


@override_settings(DEMO_MODE=False)
def test_login_page__not_demo_mode__no_hint(client):
    assert 'id="demo-hint"' not in client.get(reverse("login")).content.decode()


@override_settings(DEBUG=True)
def test_unknown_address__debug_on__rollcalls_404_page(rm_client):
    response = rm_client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "There is nothing at this address" in html
    assert "URLconf" not in html and "Django tried these URL patterns" not in html


def test_unknown_address__debug_off__rollcalls_404_page(rm_client):
    response = rm_client.get("/rollouts/no-such-rollout/")
    assert response.status_code == 404
    assert "There is nothing at this address" in response.content.decode()


def test_log__403__one_line_without_traceback(support_client, caplog):
    # The filter comes from settings.LOGGING: without it Django attaches the traceback.
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = support_client.post("/flags/new/", {"key": "x"})
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records and all(r.exc_info is None for r in records)


def test_quiet_permission_denied__keeps_tracebacks_of_errors():
    from core.logs import QuietPermissionDenied

    def record(status: int) -> logging.LogRecord:
        r = logging.LogRecord(
            "django.request", logging.WARNING, "", 0, "x", None, (None, None, None)
        )
        r.status_code = status
        return r

    assert QuietPermissionDenied().filter(forbidden := record(403)) and forbidden.exc_info is None
    assert QuietPermissionDenied().filter(error := record(500)) and error.exc_info is not None


def test_log_filters__configured_for_django_request_and_kombu():
    from django.conf import settings

    assert "quiet_403" in settings.LOGGING["loggers"]["django.request"]["filters"]
    assert "kombu_no_hostname" in settings.LOGGING["loggers"]["kombu.connection"]["filters"]


def test_kombu_no_hostname_warning__dropped_other_warnings_kept():
    from core.logs import DropKombuNoHostname

    f = DropKombuNoHostname()

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("kombu.connection", logging.WARNING, "", 0, msg, None, None)

    assert not f.filter(record("No hostname was supplied. Reverting to default 'localhost'"))
    assert f.filter(record("Connection refused"))


def test_mail_backend__message_in_a_file_and_one_log_line(tmp_path, caplog):
    from core.mail import SummaryFileBackend

    backend = SummaryFileBackend(file_path=str(tmp_path))
    message = mail.EmailMessage("Phase 2 starts", "Body text", "a@example.com", ["b@example.com"])
    with caplog.at_level(logging.INFO, logger="rollcall.mail"):
        assert backend.send_messages([message]) == 1
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and b"Body text" in files[0].read_bytes()
    lines = [r.getMessage() for r in caplog.records if r.name == "rollcall.mail"]
    assert len(lines) == 1 and "b@example.com" in lines[0] and "Phase 2 starts" in lines[0]
    assert "Content-Type" not in lines[0]
