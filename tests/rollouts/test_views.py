"""rollouts.views at their boundary: status, partials for htmx, HX-Trigger, 403, 286."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from rollouts import services
from rollouts.models import Phase, Release, Rollout, RolloutEvent
from tests.rollouts.factories import (
    EnvironmentFactory,
    ReleaseFactory,
    beta_segment,
    make_rollout,
    phase,
    soak_plan,
)

pytestmark = pytest.mark.django_db

UI = RolloutEvent.Source.UI
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def env():
    return EnvironmentFactory(key="production", name="Production")


@pytest.fixture
def draft(env):
    return make_rollout(environment=env, phases=soak_plan(10, 50, 100, soak=timedelta(hours=3)))


@pytest.fixture
def running(draft):
    return services.rollout_start(rollout=draft, actor=None, source=UI)


def detail_url(rollout: Rollout) -> str:
    return reverse("rollouts:detail", kwargs={"key": rollout.key})


def action_url(rollout: Rollout, action: str) -> str:
    return reverse("rollouts:action", kwargs={"key": rollout.key, "action": action})


def triggers(response) -> dict:
    return json.loads(response["HX-Trigger"])


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


# --------------------------------------------------------------------------------------------
# List


def test_rollout_list__anonymous__redirects_to_login(client, db):
    response = client.get(reverse("rollouts:list"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_rollout_list__running_rollout__shows_state_phase_exposure_and_next_change(
    rm_client, running
):
    html = rm_client.get(reverse("rollouts:list")).content.decode()
    assert "Running" in html
    assert "▶" in html  # an icon as well as the word, never colour alone
    assert "1 of 3" in html
    assert 'aria-valuenow="10"' in html
    assert "10%" in html
    assert "in 3 hours" in html


def test_rollout_list__no_rollouts__honest_empty_state(rm_client):
    html = rm_client.get(reverse("rollouts:list")).content.decode()
    assert "No rollouts yet" in html
    assert reverse("rollouts:new") in html


def test_rollout_list__htmx_filter__renders_only_the_table(rm_client, running, draft):
    response = rm_client.get(
        reverse("rollouts:list"), {"state": "draft"}, HTTP_HX_TARGET="rollout-table", **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="rollout-table"' in html
    assert "<html" not in html
    assert "<form" not in html  # the filter form is not part of the partial


def test_rollout_list__filter_by_state__lists_only_matching(rm_client, env, running):
    other = make_rollout(environment=EnvironmentFactory(key="staging"))
    html = rm_client.get(reverse("rollouts:list"), {"state": "draft"}).content.decode()
    assert other.key in html
    assert running.key not in html


def test_rollout_list__filter_by_strategy_and_environment__narrows(rm_client, env, draft):
    staging = EnvironmentFactory(key="staging", name="Staging")
    canary = make_rollout(environment=staging, strategy=Rollout.Strategy.CANARY)
    html = rm_client.get(reverse("rollouts:list"), {"strategy": "canary"}).content.decode()
    assert canary.key in html and draft.key not in html
    html = rm_client.get(reverse("rollouts:list"), {"environment": "production"}).content.decode()
    assert draft.key in html and canary.key not in html


def test_rollout_list__filters_match_nothing__says_so(rm_client, draft):
    html = rm_client.get(reverse("rollouts:list"), {"state": "held"}).content.decode()
    assert "No rollouts match these filters" in html


def test_rollout_list__support__sees_rollouts_without_new_button(support_client, draft):
    html = support_client.get(reverse("rollouts:list")).content.decode()
    assert draft.key in html
    assert "New rollout" not in html


# --------------------------------------------------------------------------------------------
# Rollout page


def test_rollout_detail__unknown_key__404(rm_client):
    assert rm_client.get("/rollouts/no-such-rollout/").status_code == 404


def test_rollout_detail__running__offers_the_allowed_actions_only(rm_client, running):
    html = rm_client.get(detail_url(running)).content.decode()
    for label in ("Advance now", "Pause", "Complete", "Roll back", "Cancel rollout", "Edit plan"):
        assert label in html, label
    assert ">▶</span> Start</button>" not in html
    assert "Resume</button>" not in html
    # Destructive actions ask first, with htmx and as plain forms.
    assert 'hx-confirm="Roll back this rollout?' in html
    assert 'data-confirm="Roll back this rollout?' in html


def test_rollout_detail__draft__offers_start_and_schedule(rm_client, draft):
    html = rm_client.get(detail_url(draft)).content.decode()
    assert "Start</button>" in html
    assert "Schedule</button>" in html
    assert "Roll back</button>" not in html


def test_rollout_detail__support__sees_everything_but_no_action_or_form(support_client, running):
    response = support_client.get(detail_url(running))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Phase timeline" in html and "Event log" in html and "How services ask" in html
    main = html.split('<main id="main"', 1)[1]
    assert 'method="post"' not in main
    for label in ("Advance now", "Pause</button>", "Roll back</button>", "Edit plan"):
        assert label not in main, label


def test_rollout_detail__page__charts_are_accessible_svg(rm_client, running):
    html = rm_client.get(detail_url(running)).content.decode()
    assert html.count('role="img"') == 2
    assert "<title" in html and "<desc" in html
    assert 'class="now"' in html


def test_rollout_detail__how_services_ask__ofrep_call_and_flag_key_copyable(rm_client, running):
    html = rm_client.get(detail_url(running)).content.decode()
    assert f"/ofrep/v1/evaluate/flags/{running.flag.key}" in html
    assert 'data-copy="flag-key"' in html
    assert f'<code id="flag-key">{running.flag.key}</code>' in html


def test_rollout_detail__progress_poll__renders_only_the_progress_region(rm_client, running):
    response = rm_client.get(detail_url(running), HTTP_HX_TARGET="progress", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="progress"')
    assert "<html" not in html
    assert 'hx-trigger="every 5s, rolloutChanged from:body"' in html


def test_rollout_detail__progress_poll_when_final__stops_polling_with_286(rm_client, running):
    services.rollout_rollback(rollout=running, actor=None, source=UI, reason="bad")
    response = rm_client.get(detail_url(running), HTTP_HX_TARGET="progress", **HTMX)
    html = response.content.decode()
    assert response.status_code == 286
    assert "Rolled back" in html
    assert "every 5s" not in html


def test_rollout_detail__header_refresh__renders_only_the_header(rm_client, running):
    response = rm_client.get(detail_url(running), HTTP_HX_TARGET="rollout-header", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="rollout-header"')
    assert "Event log" not in html


def test_rollout_detail__event_log__who_source_exposure_and_reason(rm_client, running):
    services.rollout_advance_now(rollout=running, actor=None, source=UI, reason="metrics are green")
    html = rm_client.get(detail_url(running)).content.decode()
    assert "metrics are green" in html
    assert "10% → 50%" in html
    assert "Phase started" in html


# --------------------------------------------------------------------------------------------
# Actions


def test_rollout_action__start_with_htmx__204_with_events_and_rollout_running(rm_client, draft):
    response = rm_client.post(action_url(draft, "start"), **HTMX)
    assert response.status_code == 204
    events = triggers(response)
    assert "rolloutChanged" in events
    assert events["toast"]["level"] == "success"
    assert reload(draft).state == Rollout.State.RUNNING


def test_rollout_action__plain_post__redirects_to_the_rollout(rm_client, draft):
    response = rm_client.post(action_url(draft, "start"))
    assert response.status_code == 302
    assert response.url == detail_url(draft)
    assert reload(draft).state == Rollout.State.RUNNING


def test_rollout_action__support_posts__403_page_says_why(support_client, running):
    response = support_client.post(action_url(running, "rollback"))
    html = response.content.decode()
    assert response.status_code == 403
    assert "Release managers" in html
    assert reload(running).state == Rollout.State.RUNNING


def test_rollout_action__advance_now_without_reason__error_toast_and_nothing_moves(
    rm_client, running
):
    response = rm_client.post(action_url(running, "advance_now"), {"reason": " "}, **HTMX)
    assert response.status_code == 204
    assert triggers(response)["toast"]["level"] == "error"
    assert reload(running).current_phase_index == 0


def test_rollout_action__advance_now_with_reason__next_phase_and_reason_logged(rm_client, running):
    response = rm_client.post(
        action_url(running, "advance_now"),
        {"reason": "error rate flat", "expected_phase_index": "0"},
        **HTMX,
    )
    assert "rolloutChanged" in triggers(response)
    assert reload(running).current_phase_index == 1
    event = running.events.filter(kind=RolloutEvent.Kind.ADVANCED).order_by("-at", "-id").first()
    assert event.reason == "error rate flat"
    assert event.source == UI


def test_rollout_action__advance_now_seen_phase_is_stale__conflict_refreshes_page(
    rm_client, running
):
    response = rm_client.post(
        action_url(running, "advance_now"),
        {"reason": "go", "expected_phase_index": "1"},
        **HTMX,
    )
    events = triggers(response)
    assert events["toast"]["level"] == "error"
    assert "rolloutChanged" in events
    assert reload(running).current_phase_index == 0


def test_rollout_action__illegal_transition_plain_post__redirect_with_message(rm_client, draft):
    response = rm_client.post(action_url(draft, "pause"), follow=True)
    html = response.content.decode()
    assert "Cannot pause" in html
    assert reload(draft).state == Rollout.State.DRAFT


def test_rollout_action__rollback_with_reason__rolled_back_and_reason_recorded(rm_client, running):
    rm_client.post(action_url(running, "rollback"), {"reason": "5xx spike"}, **HTMX)
    assert reload(running).state == Rollout.State.ROLLED_BACK
    assert running.events.get(kind=RolloutEvent.Kind.ROLLED_BACK).reason == "5xx spike"


def test_rollout_action__unknown_action__404(rm_client, running):
    assert rm_client.post(action_url(running, "explode")).status_code == 404


def test_rollout_action__get__not_allowed(rm_client, running):
    assert rm_client.get(action_url(running, "pause")).status_code == 405


# --------------------------------------------------------------------------------------------
# New rollout


def test_rollout_create__get__labelled_form_with_templates(rm_client, env):
    html = rm_client.get(reverse("rollouts:new")).content.decode()
    assert '<label for="id_release">' in html
    assert '<label for="id_timezone">' in html
    assert "Beta testers -&gt; 5 -&gt; 25 -&gt; 50 -&gt; 100" in html
    assert "Europe/Berlin" in html


def test_rollout_create__post_with_template__draft_with_template_plan(
    rm_client, env, release_manager
):
    beta_segment()
    release = ReleaseFactory(name="Checkout", version="2.0")
    response = rm_client.post(
        reverse("rollouts:new"),
        {
            "release": release.pk,
            "environment": env.pk,
            "strategy": "feature_flag",
            "flag_choice": "new",
            "flag_key": "checkout-v2",
            "timezone": "Europe/Berlin",
            "template": "beta-5-25-50-100",
        },
    )
    rollout = Rollout.objects.get()
    assert response.status_code == 302
    assert response.url == detail_url(rollout)
    assert rollout.flag.key == "checkout-v2"
    assert rollout.timezone == "Europe/Berlin"
    assert rollout.owner == release_manager
    assert list(rollout.phases.values_list("percentage", flat=True)) == [None, 5, 25, 50, 100]


def test_rollout_create__template_of_another_strategy__error_on_the_template(rm_client, env):
    release = ReleaseFactory()
    response = rm_client.post(
        reverse("rollouts:new"),
        {
            "release": release.pk,
            "environment": env.pk,
            "strategy": "canary",
            "flag_choice": "new",
            "timezone": "UTC",
            "template": "rolling-4-batches",
        },
    )
    assert response.status_code == 200
    assert "is not a Canary template" in response.content.decode()
    assert not Rollout.objects.exists()


def test_rollout_create__service_refuses__error_shown_not_500(rm_client, env):
    # The beta template needs the "Beta testers" segment, which does not exist here.
    release = ReleaseFactory()
    response = rm_client.post(
        reverse("rollouts:new"),
        {
            "release": release.pk,
            "environment": env.pk,
            "strategy": "feature_flag",
            "flag_choice": "new",
            "timezone": "UTC",
            "template": "beta-5-25-50-100",
        },
    )
    assert response.status_code == 200
    assert "Beta testers" in response.content.decode()
    assert "errorlist" in response.content.decode()


def test_rollout_create__existing_flag_without_choice__asks_for_the_flag(rm_client, env):
    release = ReleaseFactory()
    response = rm_client.post(
        reverse("rollouts:new"),
        {
            "release": release.pk,
            "environment": env.pk,
            "strategy": "canary",
            "flag_choice": "existing",
            "timezone": "UTC",
        },
    )
    assert "Choose the flag this rollout drives." in response.content.decode()


def test_rollout_create__htmx_strategy_change__only_that_strategys_templates(rm_client, env):
    response = rm_client.get(
        reverse("rollouts:new"), {"strategy": "canary"}, HTTP_HX_TARGET="template-field", **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div class="field wide" id="template-field"')
    assert "Canary 1 -&gt; 5 -&gt; 25 -&gt; 100" in html
    assert "Rolling in 4 batches" not in html


def test_rollout_create__support__403(support_client, env):
    assert support_client.get(reverse("rollouts:new")).status_code == 403


# --------------------------------------------------------------------------------------------
# Plan editor


def plan_post(rows: list[dict], **extra) -> dict:
    data = {"phases-TOTAL": str(len(rows)), **extra}
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"phases-{i}-{key}"] = value
    return data


def row(name: str, pct: str, *, soak: str = "1", unit: str = "hours", **kw) -> dict:
    return {
        "name": name,
        "percentage": pct,
        "segment": "",
        "start_rule": "after_soak",
        "start_at": "",
        "soak_value": soak,
        "soak_unit": unit,
        "gate": "automatic",
        "notes": "",
        **kw,
    }


def plan_url(rollout: Rollout, preview: bool = False) -> str:
    name = "rollouts:plan_preview" if preview else "rollouts:plan"
    return reverse(name, kwargs={"key": rollout.key})


def test_plan_editor__get__one_fieldset_per_phase_with_labels(rm_client, draft):
    html = rm_client.get(plan_url(draft)).content.decode()
    assert html.count('class="phase-row"') == 3
    assert '<label for="id_phases-0-name">' in html
    assert 'hx-trigger="input changed delay:400ms"' in html
    assert "Projected schedule" in html


def test_plan_editor__add__new_row_rendered_and_nothing_saved(rm_client, draft):
    rows = [row("10%", "10", soak=""), row("50%", "50"), row("100%", "100")]
    response = rm_client.post(
        plan_url(draft), plan_post(rows, op="add"), HTTP_HX_TARGET="plan-editor", **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="plan-editor"')
    assert html.count('class="phase-row"') == 4
    assert draft.phases.count() == 3


def test_plan_editor__move_down__rows_swap(rm_client, draft):
    rows = [row("first", "10"), row("second", "20")]
    html = rm_client.post(plan_url(draft), plan_post(rows, op="down:0")).content.decode()
    assert html.index('value="second"') < html.index('value="first"')


def test_plan_editor__delete__row_removed(rm_client, draft):
    rows = [row("keep", "10"), row("drop", "20")]
    html = rm_client.post(plan_url(draft), plan_post(rows, op="delete:1")).content.decode()
    assert 'value="keep"' in html and 'value="drop"' not in html


def test_plan_editor__template__fills_rows_from_the_template(rm_client, draft):
    beta = beta_segment()
    response = rm_client.post(
        plan_url(draft), plan_post([], op="template", template="beta-5-25-50-100")
    )
    html = response.content.decode()
    assert html.count('class="phase-row"') == 5
    assert f'<option value="{beta.id}" selected>Beta testers</option>' in html


def test_plan_editor__save_with_htmx__plan_stored_and_rollout_changed_event(rm_client, draft):
    rows = [
        row("Canary", "5", soak=""),
        row("Half", "50", soak="30", unit="minutes", gate="manual"),
        row("All", "100", soak="2", unit="days", notes="GA"),
    ]
    response = rm_client.post(
        plan_url(draft),
        plan_post(rows, op="save", version=str(draft.version)),
        HTTP_HX_TARGET="plan-editor",
        **HTMX,
    )
    assert response.status_code == 200
    assert "rolloutChanged" in triggers(response)
    phases = list(draft.phases.order_by("order"))
    assert [p.name for p in phases] == ["Canary", "Half", "All"]
    assert [p.percentage for p in phases] == [5, 50, 100]
    assert phases[1].soak == timedelta(minutes=30)
    assert phases[1].gate == Phase.Gate.MANUAL
    assert phases[2].soak == timedelta(days=2)
    assert phases[2].notes == "GA"


def test_plan_editor__save_plain_post__redirects_to_the_rollout(rm_client, draft):
    rows = [row("a", "10", soak=""), row("b", "100")]
    response = rm_client.post(plan_url(draft), plan_post(rows, op="save"))
    assert response.status_code == 302
    assert response.url == detail_url(draft)


def test_plan_editor__start_at_in_rollout_timezone__stored_as_that_wall_clock(rm_client, env):
    rollout = make_rollout(environment=env, timezone="Europe/Berlin")
    rows = [row("at nine", "10", soak="", start_rule="at", start_at="2031-07-01T09:00")]
    rm_client.post(plan_url(rollout), plan_post(rows, op="save"))
    start_at = rollout.phases.get().start_at
    assert start_at is not None
    assert start_at.isoformat().startswith("2031-07-01T07:00:00")  # 09:00 CEST is 07:00 UTC


def test_plan_editor__service_error__shown_on_the_phase_field(rm_client, draft):
    # Exposure only grows: the service names "phases.1.percentage".
    rows = [row("a", "50", soak=""), row("b", "10")]
    response = rm_client.post(
        plan_url(draft), plan_post(rows, op="save"), HTTP_HX_TARGET="plan-editor", **HTMX
    )
    html = response.content.decode()
    second = html.split('id="phase-1"', 1)[1]
    assert "less than the 50%" in second
    first = html.split('id="phase-0"', 1)[1].split('id="phase-1"', 1)[0]
    assert "less than the 50%" not in first  # (the error summary above the rows lists it too)
    assert [p.percentage for p in draft.phases.order_by("order")] == [10, 50, 100]


def test_plan_editor__invalid_input__field_error_and_nothing_saved(rm_client, draft):
    rows = [row("", "500", soak="")]
    html = rm_client.post(plan_url(draft), plan_post(rows, op="save")).content.decode()
    assert "This field is required." in html
    assert "less than or equal to 100" in html
    assert draft.phases.count() == 3


def test_plan_editor__running__applied_phase_read_only_and_kept_on_save(rm_client, running):
    html = rm_client.get(plan_url(running)).content.decode()
    assert "Phases already applied" in html
    assert html.count('class="phase-row"') == 2
    assert "Fill the plan from the template" not in html
    rows = [row("fifty", "50", soak="2"), row("all", "100")]
    response = rm_client.post(plan_url(running), plan_post(rows, op="save"))
    assert response.status_code == 302
    phases = list(running.phases.order_by("order"))
    assert [(p.name, p.percentage) for p in phases] == [("10%", 10), ("fifty", 50), ("all", 100)]
    assert phases[0].applied_at is not None


def test_plan_editor__stale_version__conflict_message(rm_client, draft):
    rows = [row("a", "10", soak=""), row("b", "100")]
    html = rm_client.post(
        plan_url(draft), plan_post(rows, op="save", version=str(draft.version - 1 or 999))
    ).content.decode()
    assert "changed meanwhile" in html


def test_plan_editor__final_rollout__back_to_the_page_with_message(rm_client, running):
    services.rollout_cancel(rollout=running, actor=None, source=UI)
    response = rm_client.get(plan_url(running))
    assert response.status_code == 302


def test_plan_editor__support__403(support_client, draft):
    assert support_client.get(plan_url(draft)).status_code == 403
    assert support_client.post(plan_url(draft, preview=True), {}).status_code == 403


def test_plan_preview__renders_projection_only_and_saves_nothing(rm_client, draft):
    rows = [row("a", "10", soak=""), row("b", "60", soak="2", unit="days"), row("", "90")]
    response = rm_client.post(plan_url(draft, preview=True), plan_post(rows), **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="plan-preview"')
    assert "<svg" in html
    assert "<li>a: " in html and "<li>b: " in html
    # The third row has no name yet: left out of the projection, and said so.
    assert "Not shown until complete: phase 3." in html
    assert [p.name for p in draft.phases.order_by("order")] == ["10%", "50%", "100%"]


def test_plan_preview__manual_gate__waits_for_a_person(rm_client, draft):
    rows = [row("a", "10", soak=""), row("b", "100", gate="manual")]
    html = rm_client.post(plan_url(draft, preview=True), plan_post(rows), **HTMX).content.decode()
    assert "waits for a person" in html


# --------------------------------------------------------------------------------------------
# Releases


def release_data(**overrides) -> dict:
    return {
        "name": "Checkout",
        "version": "2.0",
        "summary": "Faster checkout",
        "label": "new",
        "changelog": "## New\n\n- one page\n\n<script>alert(1)</script>",
        "known_issues": "",
        **overrides,
    }


def test_release_create__valid__stored_and_redirected(rm_client, release_manager):
    response = rm_client.post(reverse("rollouts:release_new"), release_data())
    release = Release.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("rollouts:release_detail", kwargs={"pk": release.pk})
    assert release.owner == release_manager


def test_release_create__blank_name__field_error(rm_client):
    html = rm_client.post(reverse("rollouts:release_new"), release_data(name="")).content.decode()
    assert "This field is required." in html
    assert not Release.objects.exists()


def test_release_detail__changelog_markdown_rendered_and_sanitized(rm_client):
    release = services.release_create(**release_data(), actor=None)
    html = rm_client.get(
        reverse("rollouts:release_detail", kwargs={"pk": release.pk})
    ).content.decode()
    assert "<h2>New</h2>" in html
    assert "<li>one page</li>" in html
    assert "<script>alert(1)</script>" not in html


def test_release_detail__rollouts_per_environment(rm_client, running):
    html = rm_client.get(
        reverse("rollouts:release_detail", kwargs={"pk": running.release_id})
    ).content.decode()
    assert "Production" in html
    assert running.key in html
    assert "Running" in html


def test_release_edit__saves_fields_and_flags(rm_client, running):
    release = running.release
    response = rm_client.post(
        reverse("rollouts:release_edit", kwargs={"pk": release.pk}),
        release_data(name="Renamed", flags=[running.flag.pk], is_public="on"),
    )
    release.refresh_from_db()
    assert response.status_code == 302
    assert release.name == "Renamed"
    assert release.is_public is True
    assert list(release.flags.all()) == [running.flag]


def test_release_list__lists_releases_with_their_rollouts(rm_client, running):
    html = rm_client.get(reverse("rollouts:releases")).content.decode()
    assert str(running.release) in html
    assert running.key in html or "Production" in html


def test_release_pages__support__reads_but_cannot_create_or_edit(support_client, running):
    release = running.release
    assert support_client.get(reverse("rollouts:releases")).status_code == 200
    html = support_client.get(
        reverse("rollouts:release_detail", kwargs={"pk": release.pk})
    ).content.decode()
    assert "Edit release" not in html
    assert support_client.get(reverse("rollouts:release_new")).status_code == 403
    edit = reverse("rollouts:release_edit", kwargs={"pk": release.pk})
    assert support_client.post(edit, release_data()).status_code == 403


# --------------------------------------------------------------------------------------------
# Dashboard panels


def test_dashboard__no_rollouts__honest_empty_panels(rm_client):
    html = rm_client.get("/").content.decode()
    assert "Active rollouts" in html
    assert "No rollouts are running" in html
    assert "Nothing is scheduled" in html


def test_dashboard__running_rollout__panel_shows_exposure_and_next_change(rm_client, running):
    html = rm_client.get("/").content.decode()
    assert running.key in html
    assert 'aria-valuenow="10"' in html
    assert "in 3 hours" in html
    assert "moves to" in html and "50%" in html


def test_dashboard__scheduled_rollout__upcoming_start_listed(rm_client, env):
    start = timezone.now() + timedelta(days=2)
    rollout = make_rollout(
        environment=env,
        phases=[
            phase("first", 10, start_rule="at", start_at=start),
            phase("all", 100, soak=timedelta(hours=1)),
        ],
    )
    services.rollout_schedule(rollout=rollout, actor=None, source=UI)
    html = rm_client.get("/").content.decode()
    assert "starts with" in html
    assert "in 2 days" in html
