"""Login throttling (django-axes), production headers (CSP, HSTS, Permissions-Policy) and
`manage.py check --deploy` with production settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def _log_in(client, password: str):
    return client.post(reverse("login"), {"username": "remy", "password": password})


def test_login__fifty_wrong_passwords__right_one_refused_with_lockout_message(
    client, release_manager, settings
):
    release_manager.set_password("right-horse-battery")
    release_manager.save()

    for _ in range(50):
        _log_in(client, "wrong")
    response = _log_in(client, "right-horse-battery")

    assert response.status_code == 429
    assert "Too many failed log-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("dashboard")).status_code == 302  # still anonymous


def test_login__below_the_limit__right_password_logs_in(client, release_manager, settings):
    release_manager.set_password("right-horse-battery")
    release_manager.save()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _log_in(client, "wrong")
    response = _log_in(client, "right-horse-battery")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(release_manager.pk)


def test_login__locked_out__admin_reset_lets_the_user_in(client, release_manager, settings):
    release_manager.set_password("right-horse-battery")
    release_manager.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in(client, "wrong")
    assert _log_in(client, "right-horse-battery").status_code == 429

    call_command("axes_reset_username", "remy")

    assert _log_in(client, "right-horse-battery").status_code == 302


def test_login__lockout_is_per_user_name__other_users_unaffected(
    client, release_manager, support_user, settings
):
    support_user.set_password("support-pass-123")
    support_user.save()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in(client, "wrong")
    response = client.post(reverse("login"), {"username": "sam", "password": "support-pass-123"})
    assert response.status_code == 302


# --------------------------------------------------------------------------------------------
# Headers


def test_pages__csp_and_permissions_policy_headers(rm_client):
    response = rm_client.get(reverse("rollouts:list"))
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    # The page's <style> blocks carry this response's nonce.
    nonce = directives["style-src"].split("'nonce-")[1].rstrip("'")
    assert f'<style nonce="{nonce}">' in response.content.decode()
    assert "camera=()" in response["Permissions-Policy"]


def test_pages__no_inline_scripts_or_event_handlers(rm_client):
    import re

    for name in ("dashboard", "rollouts:list", "flags:list", "support:changelog"):
        html = rm_client.get(reverse(name)).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (name, tag)
        assert not re.search(r"\son[a-z]+=\"", html), name
        assert '"includeIndicatorStyles": false' in html


# --------------------------------------------------------------------------------------------
# Production settings


def _production_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "False",
        "SECRET_KEY": "k3Yp-" + "q8Zr7wV2mN4xT6bL0cJ9hF1sD5gA3eU" * 2,
        "ALLOWED_HOSTS": "rollcall.example.com",
        "SITE_URL": "https://rollcall.example.com",
        "SQLITE_PATH": "/tmp/rollcall-check-deploy.sqlite3",
        **extra,
    }


def test_check_deploy__production_settings__no_warnings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy__hsts_switched_off__warns_w004():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(SECURE_HSTS_SECONDS="0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "security.W004" in result.stdout + result.stderr


def test_production_settings__headers_driven_by_environment():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.ROLLCALL_OUTBOUND_ALLOW)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_production_env(SECURE_HSTS_SECONDS="600", ROLLCALL_OUTBOUND_ALLOW="wiki.corp,10/8"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["True", "600", "True", "True", "['wiki.corp',", "'10/8']"]
