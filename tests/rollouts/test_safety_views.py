"""Rollout safety pages at their boundary: status, partials, HX-Trigger, permissions, queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from rollouts import services
from rollouts.models import (
    Approval,
    ApprovalPolicy,
    ChecklistItem,
    FreezeWindow,
    Hold,
    Rollout,
    RolloutEvent,
)
from tests.rollouts.factories import (
    EnvironmentFactory,
    ReleaseFactory,
    freeze,
    gate_policy,
    make_rollout,
    phase,
    soak_plan,
)

pytestmark = pytest.mark.django_db
UI = RolloutEvent.Source.UI
HTMX = {"HTTP_HX_REQUEST": "true"}
State = Rollout.State


@pytest.fixture
def prod():
    return EnvironmentFactory(key="production", name="Production", order=2)


@pytest.fixture
def staging():
    return EnvironmentFactory(key="staging", name="Staging", order=1)


def start(rollout: Rollout, actor=None) -> Rollout:
    return services.rollout_start(rollout=rollout, actor=actor, source=UI)


@pytest.fixture
def gated(prod, release_manager):
    """A running production rollout whose next phase (50%) waits for approval, asked by Remy."""
    gate_policy(prod, min_percentage=50)
    rollout = make_rollout(environment=prod, phases=soak_plan(10, 50, 100), actor=release_manager)
    return start(rollout, release_manager)


def url(rollout: Rollout, suffix: str = "") -> str:
    return f"/rollouts/{rollout.key}/{suffix}"


def triggers(response) -> dict:
    return json.loads(response["HX-Trigger"])


def reload(rollout: Rollout) -> Rollout:
    return Rollout.objects.get(pk=rollout.pk)


# --------------------------------------------------------------------------------------------
# Rollout page


def test_rollout_page__pending_approval__requester_sees_status_but_no_approve_button(
    rm_client, gated
):
    html = rm_client.get(url(gated)).content.decode()
    assert "Waiting: 0 of 1" in html
    assert "requested by Remy" in html
    assert "Approve</button>" not in html.replace("<span", "\n<span")
    assert "waits for approval (0 of 1)" in html


def test_rollout_page__approver__approves_inline(client, approver, gated):
    client.force_login(approver)
    html = client.get(url(gated)).content.decode()
    approval = Approval.objects.get(rollout=gated, state="pending")
    assert f"/rollouts/approvals/{approval.id}/approve/" in html
    response = client.post(
        f"/rollouts/approvals/{approval.id}/approve/", {"comment": "fine"}, **HTMX
    )
    assert response.status_code == 204
    assert {"rolloutChanged", "approvalsChanged", "toast"} <= set(triggers(response))
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED


def test_rollout_page__held__every_active_hold_with_how_to_clear(rm_client, staging):
    rollout = start(make_rollout(environment=staging))
    services.rollout_hold(rollout=rollout, actor=None, source=UI, reason="error budget")
    html = rm_client.get(url(rollout)).content.decode()
    assert "Active holds" in html
    assert "error budget" in html
    assert "Clear it when the reason no longer applies" in html
    assert "held by 1 active hold" in html
    hold = Hold.objects.get(rollout=rollout)
    assert url(rollout, f"holds/{hold.id}/clear/") in html


def test_rollout_page__support__sees_holds_and_gates_without_any_form_or_secret(
    support_client, gated
):
    services.rollout_hold(rollout=gated, actor=None, source=UI, reason="checking")
    html = support_client.get(url(gated)).content.decode()
    main = html[html.index("<main") : html.index("</main>")]
    assert "checking" in main and "Waiting: 0 of 1" in main
    assert 'method="post"' not in main
    assert reload(gated).alert_secret not in html
    assert "ask a release manager for the secret" in html


def test_rollout_page__release_manager__receiver_yaml_with_the_secret(rm_client, staging):
    rollout = make_rollout(environment=staging)
    html = rm_client.get(url(rollout)).content.decode()
    assert "http://testserver/hooks/alertmanager" in html
    assert rollout.alert_secret in html
    assert "send_resolved: true" in html


def test_rollout_page__inside_a_freeze__banner_and_next_allowed_moment(rm_client, staging):
    now = timezone.now()
    rollout = start(make_rollout(environment=staging, phases=soak_plan(10, 50)))
    freeze("Black Friday", environment=staging, starts_at=now - timedelta(hours=1),
           ends_at=now + timedelta(hours=5))  # fmt: skip
    html = rm_client.get(url(rollout)).content.decode()
    assert "Changes are frozen now" in html
    assert "Black Friday" in html
    assert "the next allowed moment" in html
    assert "Override the freeze" in html


def test_rollout_page__safety_partial__only_that_region(rm_client, gated):
    response = rm_client.get(url(gated), HTTP_HX_TARGET="safety", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="safety"')
    assert "<html" not in html


def test_rollout_page__many_holds_approvals_windows__same_number_of_queries(
    rm_client, prod, release_manager, approver
):
    gate_policy(prod, min_percentage=0)
    rollout = make_rollout(environment=prod, phases=soak_plan(10, 20, 30), actor=release_manager)
    request = services.approval_request(rollout=rollout, actor=release_manager, source=UI)
    services.approval_decide(approval=request, actor=approver, decision="approve", source=UI)
    start(rollout, release_manager)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert rm_client.get(url(rollout)).status_code == 200
        return len(ctx.captured_queries)

    small = count()
    for i in range(15):
        freeze(f"W{i}", environment=prod, cron="0 22 * * *", duration=timedelta(hours=1))
        services.rollout_hold(rollout=rollout, actor=None, source=UI, reason=f"r{i}")
    assert count() == small


# --------------------------------------------------------------------------------------------
# Actions


def test_action_hold__htmx_with_reason__204_and_held(rm_client, staging):
    rollout = start(make_rollout(environment=staging))
    response = rm_client.post(url(rollout, "actions/hold/"), {"reason": "spike"}, **HTMX)
    assert response.status_code == 204
    assert "rolloutChanged" in triggers(response)
    assert reload(rollout).state == State.HELD


def test_action_hold__without_reason__error_toast_and_still_running(rm_client, staging):
    rollout = start(make_rollout(environment=staging))
    response = rm_client.post(url(rollout, "actions/hold/"), {}, **HTMX)
    assert triggers(response)["toast"]["level"] == "error"
    assert reload(rollout).state == State.RUNNING


def test_hold_clear__last_hold__paused_and_message_says_resume(rm_client, staging):
    rollout = start(make_rollout(environment=staging))
    services.rollout_hold(rollout=rollout, actor=None, source=UI, reason="x")
    hold = Hold.objects.get()
    response = rm_client.post(url(rollout, f"holds/{hold.id}/clear/"), **HTMX)
    assert response.status_code == 204
    assert "resume" in triggers(response)["toast"]["message"]
    assert reload(rollout).state == State.PAUSED


def test_hold_clear__support__403(support_client, staging):
    rollout = start(make_rollout(environment=staging))
    services.rollout_hold(rollout=rollout, actor=None, source=UI, reason="x")
    hold = Hold.objects.get()
    assert support_client.post(url(rollout, f"holds/{hold.id}/clear/")).status_code == 403
    assert Hold.objects.get().is_active


def test_action_rollback__freeze_mode__exposure_kept(rm_client, staging):
    rollout = start(make_rollout(environment=staging))
    response = rm_client.post(url(rollout, "actions/rollback/"), {"mode": "freeze"})
    assert response.status_code == 302
    rollout = reload(rollout)
    assert (rollout.state, rollout.rollback_mode) == (State.ROLLED_BACK, "freeze")


def test_rollout_page__canary__no_rollback_choice(rm_client, staging):
    rollout = start(make_rollout(environment=staging, strategy="canary", phases=soak_plan(5, 100)))
    html = rm_client.get(url(rollout)).content.decode()
    assert "Roll back</button>" in html
    assert "Freeze at the current exposure" not in html


def test_rollout_page__feature_flag__rollback_offers_both_choices(rm_client, staging):
    rollout = start(make_rollout(environment=staging))
    html = rm_client.get(url(rollout)).content.decode()
    assert "Restore the rules from before the rollout" in html
    assert "Freeze at the current exposure" in html


def test_action_advance_now__override_inside_freeze__advanced_and_recorded(rm_client, staging):
    now = timezone.now()
    rollout = start(make_rollout(environment=staging, phases=soak_plan(10, 50)))
    freeze("Freeze", environment=staging, starts_at=now - timedelta(hours=1),
           ends_at=now + timedelta(hours=5))  # fmt: skip
    refused = rm_client.post(url(rollout, "actions/advance_now/"), {"reason": "fix"}, **HTMX)
    assert triggers(refused)["toast"]["level"] == "error"
    assert "override" in triggers(refused)["toast"]["message"]
    assert reload(rollout).current_phase_index == 0
    response = rm_client.post(
        url(rollout, "actions/advance_now/"), {"reason": "fix", "override": "1"}, **HTMX
    )
    assert response.status_code == 204
    assert triggers(response)["toast"]["level"] == "success"
    assert reload(rollout).current_phase_index == 1
    assert rollout.events.filter(kind="override", reason="fix").exists()


def test_approval_request__draft_with_gated_first_phase__requested(rm_client, prod):
    gate_policy(prod, min_percentage=0)
    rollout = make_rollout(environment=prod)
    html = rm_client.get(url(rollout)).content.decode()
    assert "Request approval" in html
    response = rm_client.post(url(rollout, "approval/request/"), **HTMX)
    assert response.status_code == 204
    assert Approval.objects.filter(rollout=rollout, state="pending").exists()


# --------------------------------------------------------------------------------------------
# Approvals queue


def test_approvals_page__approver__sees_the_request_with_buttons(client, approver, gated):
    client.force_login(approver)
    html = client.get("/rollouts/approvals/").content.decode()
    assert gated.key in html
    assert "Approve<span" in html and "Decline<span" in html


def test_approvals_page__requester__does_not_see_own_request(rm_client, gated):
    html = rm_client.get("/rollouts/approvals/").content.decode()
    assert "Nothing waits for your approval" in html


def test_approvals_page__support__told_the_role_needed(support_client, gated):
    html = support_client.get("/rollouts/approvals/").content.decode()
    assert "needs the Release managers role" in html


def test_approval_decide__decline_without_comment__error_and_still_pending(client, approver, gated):
    client.force_login(approver)
    approval = Approval.objects.get(rollout=gated)
    response = client.post(f"/rollouts/approvals/{approval.id}/decline/", {}, **HTMX)
    assert triggers(response)["toast"]["level"] == "error"
    approval.refresh_from_db()
    assert approval.state == "pending"


def test_approval_decide__decline_plain_post__redirect_and_rollout_held(client, approver, gated):
    client.force_login(approver)
    approval = Approval.objects.get(rollout=gated)
    response = client.post(
        f"/rollouts/approvals/{approval.id}/decline/", {"comment": "wait for the fix"}
    )
    assert response.status_code == 302 and response["Location"] == "/rollouts/approvals/"
    assert reload(gated).state == State.HELD


def test_approval_decide__support__403(support_client, gated):
    approval = Approval.objects.get(rollout=gated)
    assert support_client.post(f"/rollouts/approvals/{approval.id}/approve/").status_code == 403


def test_approvals_page__many_requests__same_number_of_queries(client, approver, prod, make_user):
    gate_policy(prod, min_percentage=50)
    client.force_login(approver)
    requester = make_user("req", "Release managers")

    def add(n: int) -> None:
        for _ in range(n):
            r = make_rollout(environment=prod, phases=soak_plan(10, 50), release=ReleaseFactory(),
                             actor=requester)  # fmt: skip
            start(r, requester)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/rollouts/approvals/").status_code == 200
        return len(ctx.captured_queries)

    add(2)
    small = count()
    add(10)
    assert count() == small


def test_dashboard__approver__approvals_panel_lists_the_request(client, approver, gated):
    client.force_login(approver)
    html = client.get("/").content.decode()
    assert "Approvals waiting for you" in html
    assert gated.key in html


# --------------------------------------------------------------------------------------------
# Checklists, alert settings, plan editor


def test_checklist_tick__htmx__ticked_with_who(rm_client, staging, release_manager):
    plan = [phase("Beta", 10), phase("GA", 100, soak=timedelta(hours=1), checklist=["Sign-off"])]
    rollout = start(make_rollout(environment=staging, phases=plan))
    item = ChecklistItem.objects.get()
    html = rm_client.get(url(rollout)).content.decode()
    assert "Sign-off" in html and "not ticked" in html
    response = rm_client.post(url(rollout, f"checklist/{item.id}/"), {"ticked": "1"}, **HTMX)
    assert response.status_code == 204
    item.refresh_from_db()
    assert item.ticked_by == release_manager


def test_alert_settings__bad_matcher__error_and_nothing_saved(rm_client, staging):
    rollout = make_rollout(environment=staging)
    response = rm_client.post(
        url(rollout, "alerts/"),
        {"alert_policy": "rollback", "alert_matchers": "not a matcher"},
        **HTMX,
    )
    assert triggers(response)["toast"]["level"] == "error"
    assert reload(rollout).alert_policy == "hold"


def test_alert_settings__saved_and_secret_rotated(rm_client, staging):
    rollout = make_rollout(environment=staging)
    old = rollout.alert_secret
    response = rm_client.post(
        url(rollout, "alerts/"),
        {"alert_policy": "rollback", "alert_matchers": 'service="x"', "rotate_secret": "on"},
    )
    assert response.status_code == 302
    rollout = reload(rollout)
    assert (rollout.alert_policy, rollout.alert_matchers) == ("rollback", 'service="x"')
    assert rollout.alert_secret and rollout.alert_secret != old


def test_plan_editor__approval_and_checklist__saved(rm_client, staging):
    rollout = make_rollout(environment=staging, phases=soak_plan(10, 100))
    data = {"op": "save", "version": rollout.version, "phases-TOTAL": 2}
    for i, (pct, soak) in enumerate([(10, ""), (100, "1")]):
        data.update({
            f"phases-{i}-name": f"P{i}", f"phases-{i}-percentage": pct,
            f"phases-{i}-start_rule": "after_soak", f"phases-{i}-soak_value": soak,
            f"phases-{i}-soak_unit": "hours", f"phases-{i}-gate": "automatic",
        })  # fmt: skip
    data["phases-1-requires_approval"] = "on"
    data["phases-1-checklist"] = "Staging sign-off\nSupport briefed"
    response = rm_client.post(url(rollout, "plan/"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    last = rollout.phases.get(order=1)
    assert last.requires_approval
    assert list(last.checklist.values_list("label", flat=True)) == [
        "Staging sign-off", "Support briefed"
    ]  # fmt: skip
    page = rm_client.get(url(rollout, "plan/")).content.decode()
    assert "Staging sign-off\nSupport briefed" in page


# --------------------------------------------------------------------------------------------
# Calendar


def test_calendar__month__next_phase_change_and_freeze_window_linked(rm_client, staging):
    now = timezone.now()
    rollout = start(
        make_rollout(environment=staging, phases=soak_plan(10, 50, soak=timedelta(hours=2)))
    )
    freeze("Code freeze", environment=staging, starts_at=now + timedelta(hours=5),
           ends_at=now + timedelta(hours=7))  # fmt: skip
    response = rm_client.get("/rollouts/calendar/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="/rollouts/{rollout.key}/"' in html
    assert "→ 50%" in html
    assert "Code freeze" in html
    assert 'aria-current="date"' in html


def test_calendar__week_view_and_environment_filter(rm_client, staging, prod):
    here = start(
        make_rollout(environment=staging, phases=soak_plan(10, 50, soak=timedelta(hours=1)))
    )
    there = start(make_rollout(environment=prod, phases=soak_plan(10, 50, soak=timedelta(hours=1)),
                               release=ReleaseFactory()))  # fmt: skip
    html = rm_client.get("/rollouts/calendar/?view=week&environment=production").content.decode()
    assert "Week of" in html
    assert there.key in html and here.key not in html


def test_calendar__bad_query__falls_back_not_500(rm_client):
    response = rm_client.get("/rollouts/calendar/?view=year&date=2030-13-45&tz=Mars/Base")
    assert response.status_code == 200


def test_calendar__10_and_60_rollouts__same_number_of_queries(rm_client, staging, time_machine):
    # A fixed 10:00 UTC: the daily 22:00-24:00 freeze below must not cover the starts.
    time_machine.move_to(datetime(2026, 6, 15, 10, 0, tzinfo=UTC), tick=False)

    def add(n: int) -> None:
        for _ in range(n):
            start(
                make_rollout(
                    environment=staging, phases=soak_plan(10, 50), release=ReleaseFactory()
                )
            )

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert rm_client.get("/rollouts/calendar/").status_code == 200
        return len(ctx.captured_queries)

    add(3)
    freeze("F", environment=staging, cron="0 22 * * *", duration=timedelta(hours=2))
    count()  # the first visit makes the person's feed token
    small = count()
    add(20)
    assert count() == small


def test_calendar__busy_day__bounded_entries_with_a_count_of_the_rest(
    rm_client, staging, time_machine
):
    from rollouts.views.calendar import MONTH_ENTRIES_PER_DAY, WEEK_ENTRIES_PER_DAY
    from tests.rollouts.factories import RolloutEventFactory

    time_machine.move_to(datetime(2026, 6, 15, 10, 0, tzinfo=UTC), tick=False)
    rollout = start(make_rollout(environment=staging, phases=soak_plan(10, 50, 100)))
    busy = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)

    def changes(n: int) -> None:
        for i in range(n):
            RolloutEventFactory(
                rollout=rollout, kind="advanced", to_phase_index=1, to_percentage=50,
                at=busy + timedelta(minutes=i),
            )  # fmt: skip

    def month() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as ctx:
            response = rm_client.get("/rollouts/calendar/?date=2026-06-15")
        return response.content.decode(), len(ctx.captured_queries)

    changes(2)
    month()  # the first visit makes the person's feed token
    _, small = month()
    changes(60)
    html, queries = month()

    assert queries == small
    assert html.count("phase 2 at 50%") == MONTH_ENTRIES_PER_DAY
    assert f"+{62 - MONTH_ENTRIES_PER_DAY} more" in html
    assert "view=week&amp;date=2026-06-10" in html
    week = rm_client.get("/rollouts/calendar/?view=week&date=2026-06-10").content.decode()
    assert week.count("phase 2 at 50%") == WEEK_ENTRIES_PER_DAY
    assert f"and {62 - WEEK_ENTRIES_PER_DAY} more on this day" in week


def test_calendar_feed__personal_token__ics_with_the_changes(rm_client, staging, release_manager):
    from core.models import FeedToken

    now = timezone.now()
    start(make_rollout(environment=staging, phases=soak_plan(10, 50, soak=timedelta(hours=2))))
    freeze("Code freeze", environment=staging, starts_at=now + timedelta(hours=5),
           ends_at=now + timedelta(hours=7))  # fmt: skip
    first = rm_client.get("/rollouts/calendar/").content.decode()
    assert "Create feed link" in first
    assert not FeedToken.objects.exists()  # a GET writes nothing
    created = rm_client.post("/rollouts/calendar/feed-token", {"op": "create"})
    assert created.status_code == 302
    page = rm_client.get("/rollouts/calendar/").content.decode()
    token = FeedToken.objects.get(user=release_manager, scope="calendar").token
    assert f"/rollouts/calendar/{token}.ics" in page

    response = rm_client.get(f"/rollouts/calendar/{token}.ics")
    body = response.content.decode()
    assert response["Content-Type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in body
    assert "SUMMARY:Planned:" in body and "50%" in body
    assert "SUMMARY:Freeze: Code freeze" in body


def test_calendar_feed__unknown_token_or_no_role__404(client, make_user):
    from core.models import FeedToken

    assert client.get("/rollouts/calendar/nope.ics").status_code == 404
    token = FeedToken.objects.create(user=make_user("norole"), scope="calendar").token
    assert client.get(f"/rollouts/calendar/{token}.ics").status_code == 404


def test_calendar_feed__changelog_token__404(client, release_manager):
    from core.models import FeedToken
    from core.services import feed_token_create

    token = feed_token_create(user=release_manager, scope=FeedToken.Scope.CHANGELOG).token
    assert client.get(f"/rollouts/calendar/{token}.ics").status_code == 404


def test_calendar_feed_token__reset_and_revoke(rm_client, release_manager):
    from core.models import FeedToken

    rm_client.post("/rollouts/calendar/feed-token", {"op": "create"})
    old = FeedToken.objects.get(user=release_manager, scope="calendar").token
    rm_client.post("/rollouts/calendar/feed-token", {"op": "reset"})
    new = FeedToken.objects.get(user=release_manager, scope="calendar").token
    assert new != old
    assert rm_client.get(f"/rollouts/calendar/{old}.ics").status_code == 404
    rm_client.post("/rollouts/calendar/feed-token", {"op": "revoke"})
    assert rm_client.get(f"/rollouts/calendar/{new}.ics").status_code == 404


# --------------------------------------------------------------------------------------------
# Windows and policies (admins)


def test_windows__admin_creates_recurring_window__saved_in_its_time_zone(
    admin_client_role, staging
):
    response = admin_client_role.post(
        "/rollouts/windows/",
        {
            "name": "Business hours", "kind": "allow", "environment": staging.id,
            "timezone": "Europe/Berlin", "schedule": "cron", "cron": "0 9 * * 1-5",
            "duration_value": "7", "duration_unit": "hours",
        },
    )  # fmt: skip
    assert response.status_code == 302
    window = FreezeWindow.objects.get()
    assert (window.kind, window.cron, window.duration) == (
        "allow",
        "0 9 * * 1-5",
        timedelta(hours=7),
    )
    assert "Business hours" in admin_client_role.get("/rollouts/windows/").content.decode()


def test_windows__one_off_entered_as_local_wall_clock(admin_client_role):
    admin_client_role.post(
        "/rollouts/windows/",
        {
            "name": "Launch", "kind": "deny", "timezone": "America/New_York", "schedule": "once",
            "starts_at": "2030-07-01T09:00", "ends_at": "2030-07-01T17:00",
            "duration_unit": "hours",
        },
    )  # fmt: skip
    window = FreezeWindow.objects.get()
    assert window.starts_at.isoformat() == "2030-07-01T13:00:00+00:00"


def test_windows__invalid_cron__error_on_the_field(admin_client_role):
    response = admin_client_role.post(
        "/rollouts/windows/",
        {"name": "X", "kind": "deny", "timezone": "UTC", "schedule": "cron", "cron": "daily",
         "duration_value": "1", "duration_unit": "hours"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "not a cron expression" in response.content.decode()
    assert not FreezeWindow.objects.exists()


def test_windows__release_manager__reads_but_cannot_add(rm_client):
    assert rm_client.get("/rollouts/windows/").status_code == 200
    response = rm_client.post("/rollouts/windows/", {"name": "X"})
    assert response.status_code == 403
    assert "Admins" in response.content.decode()


def test_window_delete__admin__deleted(admin_client_role):
    window = freeze("Gone", starts_at=timezone.now(), ends_at=timezone.now() + timedelta(hours=1))
    assert admin_client_role.post(f"/rollouts/windows/{window.id}/delete/").status_code == 302
    assert not FreezeWindow.objects.exists()


def test_policies__admin_sets_gates__saved(admin_client_role, staging, prod):
    response = admin_client_role.post(
        "/rollouts/policies/",
        {
            "environment": prod.id, f"env{prod.id}-min_percentage": "50",
            f"env{prod.id}-approvals_required": "2",
            f"env{prod.id}-requires_completed_in": staging.id,
        },
    )  # fmt: skip
    assert response.status_code == 302
    policy = ApprovalPolicy.objects.get(environment=prod)
    assert (policy.min_percentage, policy.approvals_required) == (50, 2)
    assert policy.requires_completed_in == staging


def test_policies__release_manager__403_on_change(rm_client, prod):
    assert rm_client.get("/rollouts/policies/").status_code == 200
    response = rm_client.post("/rollouts/policies/", {"environment": prod.id})
    assert response.status_code == 403


# --------------------------------------------------------------------------------------------
# Release pipeline


def test_release_page__pipeline__production_waits_for_staging(rm_client, staging, prod):
    gate_policy(prod, requires_completed_in=staging)
    release = ReleaseFactory(name="Checkout")
    on_staging = start(make_rollout(environment=staging, release=release))
    html = rm_client.get(f"/rollouts/releases/{release.pk}/").content.decode()
    assert "Pipeline" in html
    assert "waits for Staging to complete" in html
    assert on_staging.key in html
    services.rollout_complete(rollout=on_staging, actor=None, source=UI)
    html = rm_client.get(f"/rollouts/releases/{release.pk}/").content.decode()
    assert "Staging completed" in html


def test_rollout_list__next_phase_waits_for_approval__says_so(rm_client, gated):
    html = rm_client.get("/rollouts/").content.decode()
    assert "waits for an approval or a checklist" in html
