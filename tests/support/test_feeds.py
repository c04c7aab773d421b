"""Atom feeds (personal changelog feed, public release notes feed) and the public pages."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from comms.models import DocLink
from core.models import FeedToken
from core.services import feed_token_create
from rollouts.models import Release, Rollout
from tests.support.factories import (
    DocLinkFactory,
    EnvironmentFactory,
    ReleaseFactory,
    aware,
    rollout_in_state,
)

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = aware(2026, 11, 24, 10, 42)
SECRET_WORDS = (
    "INTERNAL-ISSUE-7",
    "https://wiki.internal.example/runbook",
    "Internal runbook",
    "Secret project",
    "Production",
)


def _parse_atom(content: bytes) -> ET.Element:
    feed = ET.fromstring(content)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        element = feed.find(f"{ATOM}{name}")
        assert element is not None and (element.text or "").strip(), f"feed/{name} missing"
    for entry in feed.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated"):
            element = entry.find(f"{ATOM}{name}")
            assert element is not None and (element.text or "").strip(), f"entry/{name} missing"
        link = entry.find(f"{ATOM}link")
        assert link is not None and link.get("href"), "entry/link missing"
    return feed


def _titles(feed: ET.Element) -> list[str]:
    return [e.find(f"{ATOM}title").text for e in feed.findall(f"{ATOM}entry")]


@pytest.fixture
def mixed(db):
    """A public release with a public and an internal link and known issues, a non-public
    release, and a rollout in production."""
    production = EnvironmentFactory(key="production", name="Production")
    public = ReleaseFactory(
        name="Faster search",
        is_public=True,
        label=Release.Label.IMPROVEMENT,
        summary="Search is faster.",
        changelog="Search answers in **half** the time.",
        known_issues="INTERNAL-ISSUE-7: slow for huge accounts",
    )
    DocLinkFactory(
        release=public,
        title="Search guide",
        url="https://docs.example.com/search",
        visibility=DocLink.Visibility.PUBLIC,
    )
    DocLinkFactory(
        release=public,
        title="Internal runbook",
        url="https://wiki.internal.example/runbook",
        kind=DocLink.Kind.RUNBOOK,
        visibility=DocLink.Visibility.INTERNAL,
    )
    hidden = ReleaseFactory(name="Secret project", is_public=False, label=Release.Label.FIX)
    rollout_in_state(
        Rollout.State.HELD, environment=production, now=NOW, release=public, reason="r"
    )
    return {"public": public, "hidden": hidden}


# --------------------------------------------------------------------------------------------
# Personal changelog feed


def test_changelog_feed__valid_atom_with_every_release_and_internal_details(
    client, support_user, mixed
):
    token = feed_token_create(user=support_user, scope=FeedToken.Scope.CHANGELOG).token

    response = client.get(reverse("support:changelog_feed", args=[token]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = _parse_atom(response.content)
    assert set(_titles(feed)) == {"[Improvement] Faster search 1.0", "[Fix] Secret project 1.0"}
    text = response.content.decode()
    # Support's own feed carries what support needs: exposure and known issues.
    assert "Held since" in text
    assert "INTERNAL-ISSUE-7" in text


def test_changelog_feed__label_and_environment_filters(client, support_user, mixed):
    token = feed_token_create(user=support_user, scope=FeedToken.Scope.CHANGELOG).token
    url = reverse("support:changelog_feed", args=[token])

    fixes = _parse_atom(client.get(url, {"label": "fix"}).content)
    production = _parse_atom(client.get(url, {"environment": "production"}).content)

    assert _titles(fixes) == ["[Fix] Secret project 1.0"]
    assert _titles(production) == ["[Improvement] Faster search 1.0"]


@pytest.mark.parametrize("case", ["unknown", "no_role", "inactive"])
def test_changelog_feed__bad_token_or_user__404(client, make_user, mixed, case):
    from core.roles import SUPPORT

    if case == "unknown":
        token = "not-a-token"
    else:
        user = make_user("feedreader", None if case == "no_role" else SUPPORT)
        if case == "inactive":
            user.is_active = False
            user.save()
        token = feed_token_create(user=user, scope=FeedToken.Scope.CHANGELOG).token

    response = client.get(reverse("support:changelog_feed", args=[token]))

    assert response.status_code == 404


def test_feed_token_reset__old_url_stops_working(support_client, support_user, mixed):
    old = feed_token_create(user=support_user, scope=FeedToken.Scope.CHANGELOG).token

    response = support_client.post(reverse("support:feed_token_reset"))

    new = FeedToken.objects.get(user=support_user, scope=FeedToken.Scope.CHANGELOG).token
    assert response.status_code == 302
    assert new != old
    assert support_client.get(reverse("support:changelog_feed", args=[old])).status_code == 404
    assert support_client.get(reverse("support:changelog_feed", args=[new])).status_code == 200


def test_changelog_page__get_creates_no_token__offers_create_button(support_client, support_user):
    response = support_client.get(reverse("support:changelog"))

    assert not FeedToken.objects.filter(user=support_user).exists()
    assert "Create feed link" in response.content.decode()


def test_changelog_page__after_create__shows_personal_feed_url(support_client, support_user, mixed):
    created = support_client.post(reverse("support:feed_token_reset"), {"op": "create"})
    response = support_client.get(reverse("support:changelog"))

    assert created.status_code == 302
    token = FeedToken.objects.get(user=support_user, scope=FeedToken.Scope.CHANGELOG).token
    assert f"/support/feed/{token}.atom" in response.content.decode()


def test_feed_token_revoke__url_stops_working(support_client, support_user, mixed):
    token = feed_token_create(user=support_user, scope=FeedToken.Scope.CHANGELOG).token
    support_client.post(reverse("support:feed_token_reset"), {"op": "revoke"})
    assert support_client.get(reverse("support:changelog_feed", args=[token])).status_code == 404


def test_feed_tokens__changelog_and_calendar_separate__calendar_token_opens_no_changelog(
    client, support_user, mixed
):
    calendar = feed_token_create(user=support_user, scope=FeedToken.Scope.CALENDAR).token
    changelog = feed_token_create(user=support_user, scope=FeedToken.Scope.CHANGELOG).token
    assert calendar != changelog
    assert client.get(reverse("support:changelog_feed", args=[calendar])).status_code == 404
    feed_token_create(user=support_user, scope=FeedToken.Scope.CHANGELOG)  # reset one
    assert FeedToken.objects.get(user=support_user, scope="calendar").token == calendar


def test_feed_token_reset__get__not_allowed(support_client, support_user):
    assert support_client.get(reverse("support:feed_token_reset")).status_code == 405
    assert not FeedToken.objects.exists()


# --------------------------------------------------------------------------------------------
# Public release notes: nothing internal


def test_public_feed__valid_atom__only_public_releases_and_public_links(client, mixed):
    response = client.get(reverse("support:release_notes_feed"))

    assert response.status_code == 200
    feed = _parse_atom(response.content)
    assert _titles(feed) == ["[Improvement] Faster search 1.0"]
    text = response.content.decode()
    assert "https://docs.example.com/search" in text
    assert "<strong>half</strong>" in text.replace("&lt;", "<").replace("&gt;", ">")
    for word in SECRET_WORDS:
        assert word not in text, word
    assert "Held" not in text


def test_public_feed__label_filter(client, mixed):
    response = client.get(reverse("support:release_notes_feed"), {"label": "fix"})

    assert _titles(_parse_atom(response.content)) == []


def test_release_notes_page__anonymous__public_only_nothing_internal(client, mixed):
    response = client.get(reverse("support:release_notes"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Faster search" in body and "Search guide" in body
    for word in SECRET_WORDS:
        assert word not in body, word
    assert "Known issues" not in body


def test_public_release_page__public__shown_and_non_public__404(client, mixed):
    ok = client.get(reverse("support:public_release", args=[mixed["public"].pk]))
    hidden = client.get(reverse("support:public_release", args=[mixed["hidden"].pk]))

    assert ok.status_code == 200
    assert "Faster search" in ok.content.decode()
    assert "INTERNAL-ISSUE-7" not in ok.content.decode()
    assert hidden.status_code == 404


def test_release_notes_page__query_count_constant(client, django_assert_max_num_queries, db):
    for i in range(30):
        release = ReleaseFactory(name=f"P{i}", is_public=True)
        DocLinkFactory(release=release)
    with django_assert_max_num_queries(3):
        response = client.get(reverse("support:release_notes"))
    assert response.status_code == 200
