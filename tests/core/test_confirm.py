"""Destructive actions without JavaScript: the first POST answers "Are you sure?", only the
second one (with the same fields) acts. htmx and JavaScript ask in the browser instead."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from flags.models import FlagState
from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.core.forms_helper import find_form, submit
from tests.flags.factories import EnvironmentFactory
from tests.rollouts.factories import make_rollout, soak_plan

pytestmark = pytest.mark.django_db
UI = RolloutEvent.Source.UI


@pytest.fixture
def running(db):
    env = EnvironmentFactory(key="production", name="Production", is_production=True)
    draft = make_rollout(environment=env, phases=soak_plan(10, 50, 100, soak=timedelta(hours=3)))
    return services.rollout_start(rollout=draft, actor=None, source=UI)


def detail(client, rollout: Rollout) -> str:
    return client.get(reverse("rollouts:detail", kwargs={"key": rollout.key})).content.decode()


@pytest.mark.parametrize(("action", "extra"), [("cancel", {}), ("rollback", {"mode": "restore"})])
def test_destructive_rollout_action__no_javascript__confirmation_page_then_acts(
    rm_client, running, action, extra
):
    url = f"/rollouts/{running.key}/actions/{action}/"
    first = submit(rm_client, detail(rm_client, running), url, reason="wrong build", **extra)

    assert first.status_code == 200
    page = first.content.decode()
    assert "Are you sure?" in page
    assert Rollout.objects.get(pk=running.pk).state == Rollout.State.RUNNING
    confirm = find_form(page, url)
    assert confirm["fields"]["_confirmed"] == "1"
    assert confirm["fields"]["reason"] == "wrong build"  # what was typed is kept

    second = submit(rm_client, page, url)

    assert second.status_code == 302
    state = Rollout.objects.get(pk=running.pk).state
    assert state == (Rollout.State.CANCELLED if action == "cancel" else Rollout.State.ROLLED_BACK)
    assert running.events.filter(reason="wrong build").exists()


def test_destructive_rollout_action__confirmation_page__offers_a_way_back(rm_client, running):
    url = f"/rollouts/{running.key}/actions/cancel/"
    page = submit(rm_client, detail(rm_client, running), url).content.decode()
    assert 'href="http://testserver/"' in page and "No, go back" in page


def test_destructive_rollout_action__htmx__acts_at_once(rm_client, running):
    url = f"/rollouts/{running.key}/actions/cancel/"
    form = find_form(detail(rm_client, running), url)
    data = {k: v for k, v in form["fields"].items() if k != "csrfmiddlewaretoken"}
    assert data["_confirm"].startswith("Cancel this rollout?")
    response = rm_client.post(url, data, HTTP_HX_REQUEST="true")  # hx-confirm asked already
    assert response.status_code == 204
    assert Rollout.objects.get(pk=running.pk).state == Rollout.State.CANCELLED


def test_production_flag_toggle__no_javascript__confirmation_page_then_toggles(rm_client, running):
    flag = running.flag
    html = rm_client.get(reverse("flags:list")).content.decode()
    url = reverse("flags:toggle", args=[flag.key, "production"])
    before = FlagState.objects.get(flag=flag, environment__key="production").enabled

    first = submit(rm_client, html, url)
    assert "Are you sure?" in first.content.decode()
    assert "This is a production environment." in first.content.decode()
    assert FlagState.objects.get(flag=flag, environment__key="production").enabled == before

    second = submit(rm_client, first.content.decode(), url)
    assert second.status_code == 302
    assert FlagState.objects.get(flag=flag, environment__key="production").enabled != before


def test_confirmation_step__support_without_permission__still_refused(support_client, running):
    url = f"/rollouts/{running.key}/actions/cancel/"
    response = support_client.post(url, {"_confirm": "Cancel?", "_confirmed": "1"})
    assert response.status_code == 403
    assert Rollout.objects.get(pk=running.pk).state == Rollout.State.RUNNING


def test_confirmation_step__plain_forms_without_question__act_at_once(rm_client, running):
    response = rm_client.post(f"/rollouts/{running.key}/actions/pause/", {"reason": "x"})
    assert response.status_code == 302
    assert Rollout.objects.get(pk=running.pk).state == Rollout.State.PAUSED
