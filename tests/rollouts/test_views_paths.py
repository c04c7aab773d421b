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


# 3. The primary button is always the next legal action.


@pytest.fixture
def gated_draft(env, release_manager):
    from tests.rollouts.factories import gate_policy

    gate_policy(env, min_percentage=0)
    return make_rollout(environment=env, phases=soak_plan(10, 100), actor=release_manager)


def header(client, rollout: Rollout) -> str:
    html = client.get(reverse("rollouts:detail", kwargs={"key": rollout.key})).content.decode()
    return html.split('id="rollout-header"', 1)[1].split('id="safety"', 1)[0]


def test_detail__approval_needed_before_start__request_approval_is_primary_and_no_start(
    rm_client, gated_draft
):
    html = header(rm_client, gated_draft)
    assert 'class="btn btn-primary"><span aria-hidden="true">✋</span> Request approval' in html
    assert "Start when approved" in html
    assert "</span> Start</button>" not in html
    assert "Before it starts:" in html and "needs approval" in html


def test_detail__approval_requested__start_when_approved_is_primary(
    rm_client, gated_draft, release_manager
):
    services.approval_request(rollout=gated_draft, actor=release_manager, source=UI)
    html = header(rm_client, gated_draft)
    assert "Request approval</button>" not in html
    assert 'btn-primary"><span aria-hidden="true">◷</span> Start when approved' in html
    assert "</span> Start</button>" not in html
    assert "waits for approval: 0 of 1" in html


def test_detail__approved__start_is_primary(rm_client, gated_draft, release_manager, approver):
    request = services.approval_request(rollout=gated_draft, actor=release_manager, source=UI)
    services.approval_decide(approval=request, actor=approver, decision="approve", source=UI)
    html = header(rm_client, gated_draft)
    assert 'class="btn btn-primary"><span aria-hidden="true">▶</span> Start</button>' in html
    assert "Start when approved" not in html and "Request approval</button>" not in html


def test_detail__no_gate__start_offered_without_start_when_approved(rm_client, draft):
    html = header(rm_client, draft)
    assert "</span> Start</button>" in html and "Start when approved" not in html


def test_start_when_approved__scheduler_starts_it_once_approved(rm_client, gated_draft, approver):
    response = rm_client.post(action_url(gated_draft, "start_when_approved"))
    assert response.status_code == 302
    rollout = Rollout.objects.get(pk=gated_draft.pk)
    assert rollout.state == Rollout.State.SCHEDULED
    request = rollout.approvals.get(state="pending")
    # The sweep waits while the approval is pending...
    services.rollouts_advance_due(now=rollout.next_due_at + timedelta(minutes=1))
    assert Rollout.objects.get(pk=rollout.pk).state == Rollout.State.SCHEDULED
    # ...and starts the rollout on the first sweep after it is approved.
    services.approval_decide(approval=request, actor=approver, decision="approve", source=UI)
    services.rollouts_advance_due(now=rollout.next_due_at + timedelta(minutes=2))
    rollout = Rollout.objects.get(pk=rollout.pk)
    assert rollout.state == Rollout.State.RUNNING and rollout.current_phase_index == 0


# 4. Starting now warns when a lead-time notice cannot be met, and offers Schedule.


@pytest.fixture
def briefed_draft(env):
    """A draft whose plan briefs Customer support 24 h before each phase (the default)."""
    from comms.models import Audience
    from tests.comms.factories import AudienceFactory

    AudienceFactory(name="Customer support", kind=Audience.Kind.CUSTOMER_SUPPORT)
    return make_rollout(environment=env, phases=soak_plan(5, 25, 100, soak=timedelta(hours=24)))


def test_detail__start_now_misses_a_briefing__warns_and_offers_schedule(rm_client, briefed_draft):
    html = header(rm_client, briefed_draft)
    warning = html.split('id="start-warning"', 1)[1].split("</div>", 1)[0]
    assert "Customer support would not get the notice 24 h before Phase 1 (5%) in time." in warning
    assert "Schedule the start for" in warning
    # Start asks first (in the browser and, without JavaScript, on the server).
    start = html.split("/actions/start/", 1)[1].split("</form>", 1)[0]
    assert 'hx-confirm="Start now? Customer support would not get' in start
    assert 'name="_confirm" value="Start now?' in start
    assert "btn-primary" not in start  # Schedule is the primary action now


def test_detail__schedule_from_the_warning__phase_1_starts_after_the_lead_time(
    rm_client, briefed_draft
):
    from tests.core.forms_helper import submit

    html = rm_client.get(
        reverse("rollouts:detail", kwargs={"key": briefed_draft.key})
    ).content.decode()
    response = submit(rm_client, html, "/actions/schedule/")
    assert response.status_code == 302
    rollout = Rollout.objects.get(pk=briefed_draft.pk)
    assert rollout.state == Rollout.State.SCHEDULED
    first = rollout.phases.order_by("order").first()
    assert first.start_at is not None
    assert first.start_at - rollout.events.get(kind="scheduled").at >= timedelta(hours=24)
    # The header no longer warns: every briefing can go out in time.
    assert 'id="start-warning"' not in header(rm_client, rollout)


def test_detail__draft_notices__none_listed_as_planned_in_the_past(rm_client, briefed_draft):
    html = rm_client.get(
        reverse("rollouts:detail", kwargs={"key": briefed_draft.key})
    ).content.decode()
    notices = html.split('id="rollout-notices-title"', 1)[1].split("</section>", 1)[0]
    phase_1 = [li for li in notices.split("<li>") if "before Phase 1 (5%)" in li]
    assert phase_1 and "Too late" in phase_1[0] and "Planned" not in phase_1[0]
    assert "too late if it starts now" in phase_1[0]


def test_detail__no_briefing_missed__no_warning(rm_client, draft):
    assert 'id="start-warning"' not in header(rm_client, draft)


# 5. Shorter ways to the plan: typed phases, more templates, New release from the form,
#    duplicate releases refused.


def test_rollout_create__phases_typed__five_phases_with_soaks(rm_client, env):
    from tests.rollouts.factories import ReleaseFactory

    release = ReleaseFactory()
    response = rm_client.post(
        reverse("rollouts:new"),
        {
            "release": release.pk,
            "environment": env.pk,
            "strategy": "canary",
            "flag_choice": "new",
            "timezone": "UTC",
            "phases_text": "5,25,50,75,100 every 24h",
        },
    )
    assert response.status_code == 302
    rollout = Rollout.objects.get(release=release)
    phases = list(rollout.phases.order_by("order"))
    assert [p.percentage for p in phases] == [5, 25, 50, 75, 100]
    assert all(p.soak == timedelta(hours=24) for p in phases[1:])


def test_rollout_create__phases_typed_badly__error_on_that_field_and_input_kept(rm_client, env):
    from tests.rollouts.factories import ReleaseFactory

    release = ReleaseFactory()
    html = rm_client.post(
        reverse("rollouts:new"),
        {
            "release": release.pk,
            "environment": env.pk,
            "strategy": "canary",
            "flag_choice": "new",
            "timezone": "UTC",
            "phases_text": "5, 50, 20",
        },
    ).content.decode()
    field = html.split('id="id_phases_text"', 1)[1].split("</div>", 1)[0]
    assert "more than the one before" in field
    assert 'value="5, 50, 20"' in html
    assert not Rollout.objects.filter(release=release).exists()


def test_templates__canary_offers_five_phases_a_day_apart():
    from rollouts.strategies import STRATEGIES

    canary = {t.key: t for t in STRATEGIES["canary"].templates}
    five = canary["canary-1-5-25-50-100"]
    assert [p["percentage"] for p in five.phases] == [1, 5, 25, 50, 100]
    assert all(len(spec.templates) >= 2 for spec in STRATEGIES.values())


def test_new_rollout_form__links_to_new_release_that_comes_back(rm_client, env):
    html = rm_client.get(reverse("rollouts:new")).content.decode()
    assert 'href="/rollouts/releases/new/?next=/rollouts/new/"' in html
    form = rm_client.get("/rollouts/releases/new/?next=/rollouts/new/").content.decode()
    assert 'name="next" value="/rollouts/new/"' in form
    response = rm_client.post(
        "/rollouts/releases/new/",
        {"name": "Checkout", "version": "2.0", "label": "new", "next": "/rollouts/new/"},
    )
    from rollouts.models import Release

    release = Release.objects.get(name="Checkout")
    assert response.status_code == 302
    assert response.url == f"/rollouts/new/?release={release.pk}"
    page = rm_client.get(response.url).content.decode()
    assert f'<option value="{release.pk}" selected>' in page


def test_new_release__next_elsewhere__ignored(rm_client, db):
    response = rm_client.post(
        "/rollouts/releases/new/",
        {"name": "Checkout", "version": "2.0", "label": "new", "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response.url.startswith("/rollouts/releases/")


def test_new_release__same_name_and_version__refused_with_a_clear_error(rm_client, db):
    data = {"name": "Checkout", "version": "2.0", "label": "new"}
    assert rm_client.post("/rollouts/releases/new/", data).status_code == 302
    response = rm_client.post("/rollouts/releases/new/", {**data, "name": "checkout"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "A release “checkout 2.0” exists already" in html
    from rollouts.models import Release

    assert Release.objects.count() == 1
