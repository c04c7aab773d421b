"""Doc links: services, forms for release managers, and what Support may (not) do or see."""

from __future__ import annotations

import pytest
from django.urls import reverse

from comms.models import DocLink
from core.exceptions import ApplicationError
from rollouts.models import Rollout
from support import services as support_services
from tests.support.factories import (
    DocLinkFactory,
    EnvironmentFactory,
    ReleaseFactory,
    aware,
    rollout_in_state,
)

NOW = aware(2026, 11, 24, 10, 42)


# --------------------------------------------------------------------------------------------
# Services


@pytest.mark.django_db
def test_doclink_create__valid__stored_unchecked(release_manager):
    release = ReleaseFactory()

    link = support_services.doclink_create(
        release=release,
        title="  User guide ",
        url="https://docs.example.com/guide",
        kind=DocLink.Kind.USER_GUIDE,
        visibility=DocLink.Visibility.PUBLIC,
        actor=release_manager,
    )

    assert (link.title, link.status, link.release_id) == ("User guide", "unchecked", release.pk)
    assert link.history.first().history_user == release_manager


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/guide.pdf",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "docs.example.com/guide",
        "mailto:help@example.com",
    ],
)
def test_doclink_create__non_http_scheme__rejected_with_clear_message(url):
    with pytest.raises(ApplicationError) as err:
        support_services.doclink_create(
            release=ReleaseFactory(), title="Guide", url=url, actor=None
        )

    assert err.value.field == "url"
    assert "http://" in err.value.message and "https://" in err.value.message
    assert DocLink.objects.count() == 0


@pytest.mark.django_db
def test_doclink_create__invalid_http_url__rejected():
    with pytest.raises(ApplicationError) as err:
        support_services.doclink_create(
            release=ReleaseFactory(), title="Guide", url="https://exa mple", actor=None
        )
    assert err.value.field == "url"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": " "}, "title"),
        ({"kind": "novel"}, "kind"),
        ({"visibility": "secret"}, "visibility"),
    ],
)
def test_doclink_create__bad_fields__field_errors(fields, field):
    data = {"title": "Guide", "url": "https://d.example/g", **fields}
    with pytest.raises(ApplicationError) as err:
        support_services.doclink_create(release=ReleaseFactory(), actor=None, **data)
    assert err.value.field == field


@pytest.mark.django_db
def test_doclink_create__neither_or_both_owners__rejected():
    from flags.models import Flag

    flag = Flag.objects.create(key="f1", name="f1")
    with pytest.raises(ApplicationError):
        support_services.doclink_create(title="G", url="https://d.example", actor=None)
    with pytest.raises(ApplicationError):
        support_services.doclink_create(
            title="G", url="https://d.example", release=ReleaseFactory(), flag=flag, actor=None
        )


@pytest.mark.django_db
def test_doclink_update__url_changed__check_result_reset():
    link = DocLinkFactory(status=DocLink.Status.BROKEN, status_code=404, last_error="gone")

    updated = support_services.doclink_update(
        doclink=link, actor=None, url="https://docs.example.com/new"
    )

    assert (updated.status, updated.status_code, updated.last_error) == ("unchecked", None, "")


@pytest.mark.django_db
def test_doclink_update__title_only__keeps_check_result():
    link = DocLinkFactory(status=DocLink.Status.OK, status_code=200, checked_at=NOW)

    updated = support_services.doclink_update(doclink=link, actor=None, title="New title")

    assert (updated.title, updated.status, updated.checked_at) == ("New title", "ok", NOW)


@pytest.mark.django_db
def test_doclink_update__unknown_field__rejected():
    with pytest.raises(ApplicationError):
        support_services.doclink_update(doclink=DocLinkFactory(), actor=None, status="ok")


@pytest.mark.django_db
def test_doclink_delete__twice__second_is_a_no_op():
    link = DocLinkFactory()
    support_services.doclink_delete(doclink=link, actor=None)
    support_services.doclink_delete(doclink=link, actor=None)
    assert DocLink.objects.count() == 0


@pytest.mark.django_db
def test_doclink_create__enqueues_a_check_after_commit(django_capture_on_commit_callbacks):
    from unittest import mock

    with (
        mock.patch("support.tasks.check_doc_link.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        link = support_services.doclink_create(
            release=ReleaseFactory(), title="G", url="https://d.example/g", actor=None
        )

    delay.assert_called_once_with(link.pk)


# --------------------------------------------------------------------------------------------
# Views: release managers


def test_release_doclink_create__valid_post__redirects_to_release(rm_client):
    release = ReleaseFactory()
    url = reverse("support:release_doclink_create", args=[release.pk])

    response = rm_client.post(
        url,
        {"title": "FAQ", "url": "https://d.example/faq", "kind": "faq", "visibility": "public"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("support:release", args=[release.pk])
    assert release.doc_links.get().title == "FAQ"


def test_release_doclink_create__ftp_url__form_shows_the_message(rm_client):
    release = ReleaseFactory()
    url = reverse("support:release_doclink_create", args=[release.pk])

    response = rm_client.post(
        url, {"title": "FAQ", "url": "ftp://d.example/faq", "kind": "faq", "visibility": "public"}
    )

    assert response.status_code == 400
    assert "Only http:// and https:// links" in response.content.decode()
    assert not release.doc_links.exists()


def test_release_doclink_create__htmx__204_with_events(rm_client):
    release = ReleaseFactory()

    response = rm_client.post(
        reverse("support:release_doclink_create", args=[release.pk]),
        {"title": "FAQ", "url": "https://d.example/faq", "kind": "faq", "visibility": "public"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 204
    assert "docLinksChanged" in response["HX-Trigger"]


def test_doclink_edit__get_prefilled_and_post_saves(rm_client):
    link = DocLinkFactory(title="Old")
    url = reverse("support:doclink_edit", args=[link.pk])

    page = rm_client.get(url)
    response = rm_client.post(
        url,
        {"title": "New", "url": link.url, "kind": "runbook", "visibility": "internal"},
    )

    assert 'value="Old"' in page.content.decode()
    assert response.status_code == 302
    link.refresh_from_db()
    assert (link.title, link.kind, link.visibility) == ("New", "runbook", "internal")


def test_doclink_delete__get_asks_post_deletes(rm_client):
    link = DocLinkFactory(title="Doomed")
    url = reverse("support:doclink_delete", args=[link.pk])

    confirm = rm_client.get(url)
    assert "Delete “Doomed”?" in confirm.content.decode()
    assert DocLink.objects.filter(pk=link.pk).exists()

    response = rm_client.post(url)

    assert response.status_code == 302
    assert not DocLink.objects.filter(pk=link.pk).exists()


def test_release_detail__release_manager__sees_edit_controls_with_confirmation(rm_client):
    link = DocLinkFactory(title="Guide")

    body = rm_client.get(reverse("support:release", args=[link.release_id])).content.decode()

    assert reverse("support:release_doclink_create", args=[link.release_id]) in body
    assert reverse("support:doclink_edit", args=[link.pk]) in body
    assert 'hx-confirm="Delete the link “Guide”?"' in body
    assert 'data-confirm="Delete the link “Guide”?"' in body


def test_flag_doclink_create__links_to_a_flag(rm_client):
    from flags.models import Flag

    flag = Flag.objects.create(key="dark-mode", name="Dark mode")
    response = rm_client.post(
        reverse("support:flag_doclink_create", args=[flag.key]) + "?next=/flags/dark-mode/",
        {"title": "Runbook", "url": "https://d.example/r", "kind": "runbook",
         "visibility": "internal"},
    )  # fmt: skip

    assert response.status_code == 302
    assert response["Location"] == "/flags/dark-mode/"
    assert flag.doc_links.get().title == "Runbook"


def test_flag_doclink_create__offsite_next__ignored(rm_client):
    from flags.models import Flag

    flag = Flag.objects.create(key="dark-mode", name="Dark mode")
    response = rm_client.post(
        reverse("support:flag_doclink_create", args=[flag.key]) + "?next=//evil.example/",
        {"title": "R", "url": "https://d.example/r", "kind": "runbook", "visibility": "internal"},
    )
    assert response["Location"] == reverse("support:changelog")


# --------------------------------------------------------------------------------------------
# Support: read-only, no secrets


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("support:release_doclink_create", "get"),
        ("support:release_doclink_create", "post"),
        ("support:doclink_edit", "post"),
        ("support:doclink_delete", "post"),
        ("support:doclink_check", "post"),
    ],
)
def test_doclink_views__support__403_with_reason(support_client, name, method):
    link = DocLinkFactory()
    arg = link.release_id if name == "support:release_doclink_create" else link.pk

    response = getattr(support_client, method)(reverse(name, args=[arg]), {"title": "x"})

    assert response.status_code == 403
    assert "Release managers" in response.content.decode()
    assert DocLink.objects.get(pk=link.pk).title == link.title


def test_support_pages__support_user__no_edit_controls_and_no_secrets(support_client, db):
    from flags import services as flag_services

    production = EnvironmentFactory(key="production", name="Production")
    rollout = rollout_in_state(Rollout.State.RUNNING, environment=production, now=NOW, reason="r")
    link = DocLinkFactory(release=rollout.release)
    _, raw_key = flag_services.sdk_key_create(environment=production, name="k", actor=None)
    Rollout.objects.filter(pk=rollout.pk).update(alert_secret="alert-secret-value-123")

    pages = [
        reverse("support:changelog"),
        reverse("support:release", args=[rollout.release_id]),
        reverse("support:lookup") + "?user_id=u1",
        reverse("dashboard"),
    ]
    for url in pages:
        response = support_client.get(url)
        body = response.content.decode()
        assert response.status_code == 200, url
        assert reverse("support:doclink_edit", args=[link.pk]) not in body, url
        assert reverse("support:doclink_delete", args=[link.pk]) not in body, url
        assert "Add a doc link" not in body, url
        assert "Check now" not in body, url
        assert raw_key not in body and raw_key[:16] not in body, url
        assert "alert-secret-value-123" not in body, url


@pytest.mark.parametrize(
    "name", ["support:changelog", "support:lookup", "support:release_notes", "support:release"]
)
def test_support_pages__anonymous__login_required_except_release_notes(client, db, name):
    release = ReleaseFactory()
    args = [release.pk] if name == "support:release" else []

    response = client.get(reverse(name, args=args))

    if name == "support:release_notes":
        assert response.status_code == 200
    else:
        assert response.status_code == 302
        assert "/accounts/login/" in response["Location"]


def test_changelog__user_without_role__403(client, make_user):
    client.force_login(make_user("nobody"))

    response = client.get(reverse("support:changelog"))

    assert response.status_code == 403
    assert "Support role" in response.content.decode()


# --------------------------------------------------------------------------------------------
# Dashboard panel


def test_support_panel__shows_live_held_and_broken_links(support_client, db):
    # Registered by SupportConfig.ready(), as in production.
    production = EnvironmentFactory(key="production", name="Production")
    running = rollout_in_state(Rollout.State.RUNNING, environment=production, now=NOW)
    held = rollout_in_state(
        Rollout.State.HELD, environment=production, now=NOW, reason="error budget"
    )
    DocLinkFactory(
        release=running.release, title="Dead guide", status="broken", last_error="HTTP 404"
    )

    body = support_client.get(reverse("dashboard")).content.decode()

    assert "Rolling out now" in body and str(running.release) in body
    assert "Held or rolled back" in body and "error budget" in body and str(held.release) in body
    assert "Broken doc links" in body and "Dead guide" in body
    assert "Changed in the last 7 days" in body


def test_support_panel__query_count_constant(support_user):
    from support.apps import support_panel

    production = EnvironmentFactory(key="production", name="Production")

    def measure() -> int:
        from django.contrib.auth.models import User

        user = User.objects.get(pk=support_user.pk)  # no cached permissions
        request = type("Request", (), {"user": user})()
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            template, _context = support_panel(request)
        assert template == "support/_dashboard_panel.html"
        return len(queries.captured_queries)

    for state in (Rollout.State.RUNNING, Rollout.State.HELD):
        rollout_in_state(state, environment=production, now=NOW, reason="r")
    DocLinkFactory(status="broken")
    small = measure()
    for state in (Rollout.State.RUNNING, Rollout.State.HELD, Rollout.State.ROLLED_BACK) * 3:
        rollout_in_state(state, environment=production, now=NOW, reason="r")
    DocLinkFactory.create_batch(5, status="broken")

    assert measure() == small
