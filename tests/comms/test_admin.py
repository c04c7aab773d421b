"""The Django admin for notices is read-only (the services validate every change) and never
shows channel URLs or signing secrets."""

from __future__ import annotations

import pytest

from comms.models import Channel
from tests.comms.factories import AudienceFactory, ChannelFactory

pytestmark = pytest.mark.django_db

SLACK_URL = "https://hooks.slack.com/services/T0001/B0002/AbCdEfGhIjKlMnOpQrStUvWx"


@pytest.fixture
def slack():
    return ChannelFactory(kind=Channel.Kind.SLACK, url=SLACK_URL, signing_secret="")


@pytest.fixture
def webhook():
    return ChannelFactory(signing_secret="f00dfeedcafe0123456789abcdefsecret")


def test_channel_admin__change_page__secrets_masked(admin_client_role, slack, webhook):
    for channel in (slack, webhook):
        html = admin_client_role.get(f"/admin/comms/channel/{channel.pk}/change/").content
        page = html.decode()
        assert channel.url not in page
        assert "AbCdEfGhIjKlMnOpQrStUvWx" not in page
        assert "f00dfeedcafe0123456789abcdefsecret" not in page
        assert 'name="url"' not in page and 'name="signing_secret"' not in page
    listing = admin_client_role.get("/admin/comms/channel/").content.decode()
    assert "https://hooks.slack.com/…" in listing
    assert "AbCdEfGh" not in listing


def test_audience_admin__inline_channels__secrets_masked(admin_client_role, slack):
    page = admin_client_role.get(f"/admin/comms/audience/{slack.audience.pk}/change/")
    assert page.status_code == 200
    assert SLACK_URL not in page.content.decode()


@pytest.mark.parametrize(
    "model", ["audience", "channel", "noticetemplate", "communicationplan", "notice", "delivery"]
)
def test_comms_admin__add_refused(admin_client_role, model):
    assert admin_client_role.get(f"/admin/comms/{model}/add/").status_code == 403


def test_channel_admin__post_change__refused_and_nothing_saved(admin_client_role, slack):
    response = admin_client_role.post(
        f"/admin/comms/channel/{slack.pk}/change/",
        {"audience": AudienceFactory().pk, "kind": "slack", "name": "x", "url": "http://10.0.0.1/"},
    )
    assert response.status_code == 403
    slack.refresh_from_db()
    assert slack.url == SLACK_URL


def test_rollouts_admin__release_add_refused_and_alert_secret_hidden(admin_client_role):
    from rollouts.models import RolloutEvent
    from rollouts.services import rollout_start
    from tests.rollouts.factories import EnvironmentFactory, make_rollout

    assert admin_client_role.get("/admin/rollouts/release/add/").status_code == 403
    rollout = rollout_start(
        rollout=make_rollout(environment=EnvironmentFactory(key="staging")),
        actor=None, source=RolloutEvent.Source.UI,
    )  # fmt: skip
    rollout.alert_secret = "alert-secret-0123456789abcdef"
    rollout.save(update_fields=["alert_secret"])
    page = admin_client_role.get(f"/admin/rollouts/rollout/{rollout.pk}/change/").content.decode()
    assert "alert-secret-0123456789abcdef" not in page
