"""One time zone per viewer: the "Your settings" page, the service, the middleware, the header,
and pages that show a known instant in the viewer's zone and no other."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import services
from core.exceptions import ApplicationError
from core.middleware import TIME_ZONE_SESSION_KEY
from core.models import UserPreference

URL = "/accounts/settings/"
INSTANT = datetime(2030, 3, 4, 9, 5, tzinfo=UTC)  # 10:05 CET in Paris, 04:05 EST in New York
PARIS_TEXT = "Mon 4 Mar 2030, 10:05 CET"
# Abbreviations of the zones this file uses for anything but the viewer: none may show.
OTHER_ZONES = re.compile(r"\b(UTC|GMT|EST|EDT|JST|America/New_York|Asia/Tokyo)\b")


def zone_of(user) -> str | None:
    return UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first()


def visible_text(html: str) -> str:
    """The page as read: no tags, no attributes (ISO datetimes there are for machines)."""
    return re.sub(r"<[^>]+>", " ", html)


def test_settings_page__url_name():
    assert reverse("user-settings") == URL


def test_settings_page__anonymous__redirected_to_login(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    response = client.post(URL, {"time_zone": "Europe/Paris"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not UserPreference.objects.exists()


def test_settings_page__get__select_of_zones_common_first_current_selected(rm_client):
    response = rm_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_time_zone">Show times in</label>' in html
    options = re.findall(r'<option value="([^"]+)"', html)
    assert options[:3] == ["UTC", "Europe/London", "Europe/Paris"]
    assert "Pacific/Auckland" in options and "America/Argentina/Buenos_Aires" in options
    assert len(options) > 400
    assert '<option value="UTC" selected>' in html


def test_settings_page__post__saves_own_zone_says_so_and_goes_back(rm_client, release_manager):
    response = rm_client.post(URL, {"time_zone": "Europe/Paris", "next": "/rollouts/"}, follow=True)
    assert response.redirect_chain == [("/rollouts/", 302)]
    assert zone_of(release_manager) == "Europe/Paris"
    assert "Times are now shown in Europe/Paris." in response.content.decode()
    assert rm_client.session[TIME_ZONE_SESSION_KEY] == "Europe/Paris"
    assert "Times in Europe/Paris" in rm_client.get(URL).content.decode()


def test_settings_page__foreign_next__goes_to_settings_not_away(rm_client):
    response = rm_client.post(URL, {"time_zone": "Asia/Tokyo", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == URL


def test_settings_page__htmx_post__toast_not_redirect(rm_client):
    response = rm_client.post(URL, {"time_zone": "Europe/Paris"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert "Times are now shown in Europe/Paris." in response["HX-Trigger"]


def test_settings_page__someone_elses_id_in_the_form__only_own_changes(
    rm_client, release_manager, support_user
):
    services.user_preference_set(actor=support_user, user=support_user, time_zone="Asia/Tokyo")
    rm_client.post(URL, {"time_zone": "Europe/Paris", "user": support_user.pk})
    assert zone_of(release_manager) == "Europe/Paris"
    assert zone_of(support_user) == "Asia/Tokyo"


@pytest.mark.parametrize("value", ["Mars/Olympus", "", "x" * 65, "Europe/Paris\x00", "../UTC"])
def test_settings_page__invalid_zone__form_error_not_saved(rm_client, release_manager, value):
    response = rm_client.post(URL, {"time_zone": value})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_time_zone-errors"' in html and 'aria-invalid="true"' in html
    assert zone_of(release_manager) is None


def test_settings_page__without_csrf_token__refused(client, release_manager):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(release_manager)
    assert strict.post(URL, {"time_zone": "Europe/Paris"}).status_code == 403
    assert zone_of(release_manager) is None


def test_user_preference_set__for_someone_else__refused_even_for_an_admin(
    admin_user_role, support_user
):
    with pytest.raises(PermissionDenied):
        services.user_preference_set(
            actor=admin_user_role, user=support_user, time_zone="Europe/Paris"
        )
    assert zone_of(support_user) is None


def test_user_preference_set__unknown_zone__field_error(support_user):
    with pytest.raises(ApplicationError) as error:
        services.user_preference_set(actor=support_user, user=support_user, time_zone="CET/Mars")
    assert error.value.field == "time_zone"


def test_user_preference_set__twice__one_row_latest_zone(support_user):
    services.user_preference_set(actor=support_user, user=support_user, time_zone="Asia/Tokyo")
    services.user_preference_set(actor=support_user, user=support_user, time_zone="UTC")
    assert list(UserPreference.objects.values_list("time_zone", flat=True)) == ["UTC"]


# --------------------------------------------------------------------------------------------
# The middleware and the header


def test_header__names_the_zone_and_links_to_the_settings(client, release_manager):
    client.force_login(release_manager)
    html = client.get("/").content.decode()
    assert re.search(
        r'<a class="viewer-zone" id="viewer-zone" href="/accounts/settings/\?next=/"', html
    )
    assert "Times in UTC" in html
    services.user_preference_set(
        actor=release_manager, user=release_manager, time_zone="America/New_York"
    )
    client.force_login(release_manager)  # a new login reads the saved zone
    assert "Times in America/New_York" in client.get("/").content.decode()


def test_middleware__zone_from_the_session__no_extra_query_per_page(client, make_user):
    plain, paris = make_user("plain"), make_user("paris")
    services.user_preference_set(actor=paris, user=paris, time_zone="Europe/Paris")
    counts = {}
    for user in (plain, paris):
        client.force_login(user)
        client.get(URL)  # warm up whatever is cached per process
        with CaptureQueriesContext(connection) as queries:
            client.get("/")
        counts[user.username] = len(queries)
    assert counts["paris"] == counts["plain"]


def test_middleware__session_without_the_zone__looks_it_up_once(client, make_user):
    paris = make_user("paris")
    services.user_preference_set(actor=paris, user=paris, time_zone="Europe/Paris")
    client.force_login(paris)
    session = client.session
    del session[TIME_ZONE_SESSION_KEY]
    session.save()
    assert "Times in Europe/Paris" in client.get("/").content.decode()
    assert client.session[TIME_ZONE_SESSION_KEY] == "Europe/Paris"


def test_middleware__anonymous_and_machines__no_session_read(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Cookie" not in response.get("Vary", "")


# --------------------------------------------------------------------------------------------
# Pages: a known instant in the viewer's zone, no other zone on the page.


@pytest.fixture
def paris_client(client, release_manager):
    services.user_preference_set(
        actor=release_manager, user=release_manager, time_zone="Europe/Paris"
    )
    client.force_login(release_manager)
    return client


def test_rollout_page__times_in_the_viewer_zone_only(paris_client):
    from rollouts.models import Rollout
    from tests.rollouts.factories import RolloutEventFactory, rollout_with_phases

    rollout = rollout_with_phases(
        10, 100, state=Rollout.State.COMPLETED, current=1, applied_from=INSTANT,
        timezone="America/New_York",
    )  # fmt: skip
    Rollout.objects.filter(pk=rollout.pk).update(finished_at=INSTANT)
    RolloutEventFactory(rollout=rollout, at=INSTANT)

    response = paris_client.get(reverse("rollouts:detail", kwargs={"key": rollout.key}))

    assert response.status_code == 200
    html = response.content.decode()
    text = visible_text(html)
    assert PARIS_TEXT in text  # started, finished, the event
    assert '<time datetime="2030-03-04T09:05:00+00:00">' + PARIS_TEXT + "</time>" in html
    assert "Times in Europe/Paris" in text
    assert not OTHER_ZONES.findall(text)


def test_notices_list__viewer_zone_not_the_audience_zone(paris_client):
    from comms.models import Notice
    from tests.comms.factories import AudienceFactory, NoticeFactory

    audience = AudienceFactory(name="US customers", timezone="America/New_York")
    NoticeFactory(audience=audience, state=Notice.State.SCHEDULED, send_at=INSTANT)
    Notice.objects.update(created_at=INSTANT)

    html = paris_client.get(reverse("comms:notices")).content.decode()

    text = visible_text(html)
    assert text.count(PARIS_TEXT) == 2  # created and planned send
    assert not OTHER_ZONES.findall(text)


def test_calendar__days_and_times_in_the_viewer_zone(paris_client):
    from tests.rollouts.factories import freeze

    freeze("Launch freeze", tz="America/New_York", starts_at=INSTANT,
           ends_at=datetime(2030, 3, 4, 23, 30, tzinfo=UTC))  # fmt: skip

    html = paris_client.get(
        reverse("rollouts:calendar"), {"view": "week", "date": "2030-03-04"}
    ).content.decode()

    text = visible_text(html)
    assert "Mon 4 Mar 2030" in text
    # Ends at 00:30 on Tuesday in Paris: the freeze continues into that day.
    assert re.search(r"10:05\s*–\s*00:30\s+Launch freeze", text)
    assert re.search(r"until\s+00:30\s+Launch freeze", text)
    assert "Times in Europe/Paris" in text
    assert not OTHER_ZONES.findall(text)


def test_api__with_a_session_of_a_paris_viewer__times_stay_utc(paris_client):
    from tests.rollouts.factories import ReleaseFactory

    release = ReleaseFactory()
    type(release).objects.filter(pk=release.pk).update(created_at=INSTANT)

    body = paris_client.get(f"/api/v1/releases/{release.pk}").json()

    assert body["created_at"] in ("2030-03-04T09:05:00Z", "2030-03-04T09:05:00+00:00")
