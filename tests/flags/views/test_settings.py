"""flags.views.settings at its boundary (environments, SDK keys), and the Django admin."""

from __future__ import annotations

from django.urls import reverse

from flags import services
from flags.models import Flag, FlagState, SdkKey
from tests.flags.views.helpers import HTMX, hx_triggers

# --------------------------------------------------------------------------------------------
# Settings


def test_settings__release_manager__403(rm_client, envs):
    assert rm_client.get(reverse("flags:settings")).status_code == 403


def test_settings__support__403_that_names_the_admins_role(support_client, envs):
    response = support_client.get(reverse("flags:settings"))

    assert response.status_code == 403
    assert "Admins role" in response.content.decode()


def test_settings__admin__environments_and_key_forms(admin_client_role, envs):
    response = admin_client_role.get(reverse("flags:settings"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'Create SDK key<span class="visually-hidden"> for Production' in html
    assert "Add an environment" in html


def test_sdk_key_create__htmx__raw_key_shown_once_then_masked(admin_client_role, envs):
    url = reverse("flags:sdk_key_create", args=["staging"])

    response = admin_client_role.post(url, {"key-staging-name": "checkout-service"}, **HTMX)

    html = response.content.decode()
    sdk_key = SdkKey.objects.get()
    raw = html.split('<code id="raw-sdk-key">')[1].split("</code>")[0]
    assert raw.startswith("rc_staging_")
    assert SdkKey.hash(raw) == sdk_key.key_hash
    assert response["Cache-Control"] == "no-store"
    assert 'data-copy="raw-sdk-key"' in html
    again = admin_client_role.get(reverse("flags:settings")).content.decode()
    assert raw not in again
    assert sdk_key.masked in again


def test_sdk_key_revoke__htmx__revoked_with_confirmation(admin_client_role, envs):
    sdk_key, _ = services.sdk_key_create(environment=envs[1], name="svc", actor=None)
    page = admin_client_role.get(reverse("flags:settings")).content.decode()
    assert 'hx-confirm="Revoke the SDK key svc' in page

    response = admin_client_role.post(reverse("flags:sdk_key_revoke", args=[sdk_key.pk]), **HTMX)

    assert response.status_code == 200
    sdk_key.refresh_from_db()
    assert sdk_key.revoked_at is not None
    assert "Revoked" in response.content.decode()


def test_environment_create__admin__added_with_states(admin_client_role, flag):
    response = admin_client_role.post(
        reverse("flags:environment_create"),
        {"new-env-key": "qa", "new-env-name": "QA", "new-env-is_production": ""},
    )

    assert response.status_code == 302
    assert FlagState.objects.filter(flag=flag, environment__key="qa").exists()


def test_environment_create__bad_key__field_error(admin_client_role, envs):
    response = admin_client_role.post(
        reverse("flags:environment_create"),
        {"new-env-key": "q a", "new-env-name": "QA"},
        **HTMX,
    )

    assert response.status_code == 200
    assert "Use letters, digits" in response.content.decode()


def test_environment_move__up__reordered(admin_client_role, envs):
    response = admin_client_role.post(
        reverse("flags:environment_move", args=["production"]), {"direction": "up"}, **HTMX
    )

    assert response.status_code == 200
    assert "environmentsChanged" in hx_triggers(response)
    order = list(envs[0]._meta.model.objects.values_list("key", flat=True))
    assert order == ["development", "production", "staging"]


# --------------------------------------------------------------------------------------------
# Django admin (read-only; the archive action calls the service)


def test_admin__flags_changelist_and_archive_action(admin_client_role, flag):
    url = reverse("admin:flags_flag_changelist")
    assert admin_client_role.get(url).status_code == 200

    response = admin_client_role.post(
        url, {"action": "archive", "_selected_action": [flag.pk]}, follow=True
    )

    assert response.status_code == 200
    flag.refresh_from_db()
    assert flag.lifecycle == Flag.Lifecycle.ARCHIVED


def test_settings__admin__links_every_admin_section(admin_client_role):
    from django.urls import reverse

    html = admin_client_role.get(reverse("flags:settings")).content.decode()
    for name in ("rollouts:policies", "rollouts:windows", "comms:audiences"):
        assert f'href="{reverse(name)}"' in html
    assert 'href="/admin/auth/user/"' in html
