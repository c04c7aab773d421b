"""The release manager's path through the rollout pages, at the view boundary: what a failed
save shows, the confirmation step without JavaScript, the next legal action as the primary
button, and lead-time warnings before a start."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from rollouts import services
from rollouts.models import Rollout, RolloutEvent
from tests.rollouts.factories import EnvironmentFactory, make_rollout, soak_plan
from tests.rollouts.test_views import plan_post, plan_url, row

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def env():
    return EnvironmentFactory(key="production", name="Production")


@pytest.fixture
def draft(env):
    return make_rollout(environment=env, phases=soak_plan(10, 50, 100, soak=timedelta(hours=3)))


def action_url(rollout: Rollout, action: str) -> str:
    return reverse("rollouts:action", kwargs={"key": rollout.key, "action": action})


# 1. A failed "Save plan" shows its errors where the person looks.


def test_plan_save_fails__plain_post__error_summary_links_each_field_and_keeps_input(
    rm_client, draft
):
    rows = [row("Canary", "500", soak=""), row("", "100")]
    response = rm_client.post(plan_url(draft), plan_post(rows, op="save"))
    html = response.content.decode()
    assert response.status_code == 200
    summary = html.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    assert "The plan was not saved: 2 problems" in summary
    assert 'href="#id_phases-0-percentage"' in summary
    assert 'href="#id_phases-1-name"' in summary
    # It comes first in the form, takes the focus, and the form posts back to it.
    assert html.index('id="error-summary"') < html.index('id="phase-rows"')
    assert "data-autofocus" in summary.split(">", 1)[0] + ">"
    assert '#plan-editor"' in html.split('<form id="plan-editor"', 1)[1].split(">", 1)[0]
    # The typed input stays, and a toast says it was not saved.
    assert 'value="Canary"' in html and 'value="500"' in html
    assert "toast-error" in html and "The plan was not saved" in html.split('id="toasts"')[1]
    assert [p.percentage for p in draft.phases.order_by("order")] == [10, 50, 100]


def test_plan_save_fails__htmx__summary_in_partial_and_error_toast_event(rm_client, draft):
    rows = [row("a", "50", soak=""), row("b", "10")]
    response = rm_client.post(
        plan_url(draft), plan_post(rows, op="save"), HTTP_HX_TARGET="plan-editor", **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="plan-editor"')
    assert 'id="error-summary"' in html and 'href="#id_phases-1-percentage"' in html
    event = json.loads(response["HX-Trigger"])["toast"]
    assert event["level"] == "error" and "not saved" in event["message"]


def test_plan_editor__add_a_phase__no_error_summary(rm_client, draft):
    rows = [row("", "500", soak="")]
    html = rm_client.post(plan_url(draft), plan_post(rows, op="add")).content.decode()
    assert 'id="error-summary"' not in html
