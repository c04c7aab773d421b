"""flags.views.flag_page at its boundary: the flag page, details and variants, evaluate, history."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flags import services
from flags.models import Flag
from tests.flags.views.helpers import HTMX, hx_triggers, main_html, state_in

# --------------------------------------------------------------------------------------------
# Flag page


def test_flag_detail__release_manager__rule_editor_per_environment(rm_client, flag, beta):
    response = rm_client.get(reverse("flags:detail", args=[flag.key]))

    html = response.content.decode()
    assert response.status_code == 200
    for env in ("development", "staging", "production"):
        assert f'id="env-section-{env}"' in html
        assert f'action="/flags/new-checkout/environments/{env}/rules/"' in html
    assert 'type="range"' in html
    assert "Beta testers" in html  # segment picker
    assert 'name="staging-new-c-add"' in html


def test_flag_detail__support__sees_rules_without_any_edit_control(support_client, flag, beta):
    services.flag_state_update(
        flag=flag,
        environment=state_in(flag).environment,
        rules=[{"name": "flexibleRollout", "parameters": {"rollout": "10"}, "segments": [beta.pk]}],
        actor=None,
    )

    response = support_client.get(reverse("flags:detail", args=[flag.key]))

    main = main_html(response)
    assert response.status_code == 200
    assert f'Segment: <a href="/flags/segments/{beta.pk}/">Beta testers</a>' in main
    assert "10% of users" in main
    assert 'method="post"' not in main
    assert "hx-post" not in main
    assert "Archive" not in main


def test_flag_detail__unknown_key__404(rm_client, envs):
    assert rm_client.get(reverse("flags:detail", args=["nope"])).status_code == 404


@pytest.mark.hold_change_check
def test_flag_detail__queries__constant_in_history_and_rules(rm_client, flag, beta):
    url = reverse("flags:detail", args=[flag.key])
    with CaptureQueriesContext(connection) as few:
        rm_client.get(url)
    state = state_in(flag)
    for pct in range(1, 15):
        state = services.rule_add(
            flag=flag,
            environment=state.environment,
            rule={"name": "flexibleRollout", "parameters": {"rollout": str(pct)}},
            actor=None,
            expected_version=state.version,
        )
    with CaptureQueriesContext(connection) as many:
        response = rm_client.get(url)

    assert response.status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.hold_change_check
def test_flag_detail__long_history__newest_page_then_older_changes_same_queries(
    rm_client, flag, time_machine
):
    from datetime import UTC, datetime, timedelta

    from flags.views.flag_page import HISTORY_PER_PAGE

    url = reverse("flags:detail", args=[flag.key])
    state = state_in(flag)
    now = datetime.now(UTC)
    start = now - timedelta(days=1)  # one change a minute, yesterday
    for pct in range(1, HISTORY_PER_PAGE + 11):
        time_machine.move_to(start + timedelta(minutes=pct), tick=False)
        state = services.rule_add(
            flag=flag,
            environment=state.environment,
            rule={"name": "flexibleRollout", "parameters": {"rollout": str(pct)}},
            actor=None,
            expected_version=state.version,
        )
    time_machine.move_to(now, tick=False)  # back to today (the session is still valid)
    with CaptureQueriesContext(connection) as first_queries:
        first = rm_client.get(url).content.decode()
    link = re.search(r'href="\?history_before=([^"#]+)#flag-history"', first)
    assert link is not None and "Older changes" in first
    with CaptureQueriesContext(connection) as older_queries:
        older = rm_client.get(url + "?history_before=" + link.group(1)).content.decode()

    assert len(older_queries.captured_queries) == len(first_queries.captured_queries)

    def times(html: str) -> list[str]:
        section = html[html.index('id="flag-history"') :]
        return re.findall(r'<time datetime="([^"]+)"', section)

    newest, earlier = times(first), times(older)
    assert len(newest) == HISTORY_PER_PAGE and earlier
    assert max(earlier) < min(newest)  # ISO times in UTC compare as text
    assert "Newest changes" in older and "Newest changes" not in first
    assert rm_client.get(url, {"history_before": "not a date"}).status_code == 200


# --------------------------------------------------------------------------------------------
# Details and variants


def _details(flag, **changes):
    data = {
        "details-name": flag.name,
        "details-description": "",
        "details-type": flag.type,
        "details-tags": "",
        "details-lifecycle": flag.lifecycle,
        "details-expected_version": str(flag.version),
    }
    data.update({f"details-{k}": v for k, v in changes.items()})
    return data


def test_flag_update__htmx__meta_partial_and_event(rm_client, flag):
    url = reverse("flags:update", args=[flag.key])

    response = rm_client.post(url, _details(flag, name="Checkout v2", tags="a, b"), **HTMX)

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="flag-meta"')
    assert "flagChanged" in hx_triggers(response)
    flag.refresh_from_db()
    assert (flag.name, flag.tags, flag.key) == ("Checkout v2", ["a", "b"], "new-checkout")


def test_flag_update__stale_version__reload_message(rm_client, flag):
    services.flag_update(flag=flag, actor=None, expected_version=1, name="Other")
    url = reverse("flags:update", args=[flag.key])

    response = rm_client.post(url, _details(flag, name="Mine", expected_version="1"), **HTMX)

    html = response.content.decode()
    assert "changed by someone else" in html
    assert "Reload the flag" in html
    flag.refresh_from_db()
    assert flag.name == "Other"


def test_flag_update__empty_name__field_error(rm_client, flag):
    response = rm_client.post(reverse("flags:update", args=[flag.key]), _details(flag, name=""))

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def _variants(flag, rows, stickiness="default"):
    data = {
        "variants-stickiness": stickiness,
        "variants-expected_version": str(flag.version),
        "variants-rows-TOTAL_FORMS": str(len(rows)),
        "variants-rows-INITIAL_FORMS": str(len(rows)),
        "variants-rows-MIN_NUM_FORMS": "0",
        "variants-rows-MAX_NUM_FORMS": "50",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"variants-rows-{i}-{key}"] = value
    return data


def test_flag_variants__weights_not_100__error_shown_nothing_saved(rm_client, flag):
    rows = [{"name": "a", "weight": "30"}, {"name": "b", "weight": "30"}]

    response = rm_client.post(reverse("flags:variants", args=[flag.key]), _variants(flag, rows))

    assert response.status_code == 400
    assert "Weights add up to 60%" in response.content.decode()
    flag.refresh_from_db()
    assert flag.variants == []


def test_flag_variants__fixed_and_shared__saved_in_unleash_units(rm_client, flag):
    rows = [
        {"name": "control", "weight": "20", "payload_type": "string", "payload_value": "old"},
        {"name": "new", "weight": ""},
    ]

    response = rm_client.post(
        reverse("flags:variants", args=[flag.key]), _variants(flag, rows, "userId"), **HTMX
    )

    assert response.status_code == 200
    flag.refresh_from_db()
    assert [(v["name"], v["weight"], v["weightType"]) for v in flag.variants] == [
        ("control", 200, "fix"),
        ("new", 800, "variable"),
    ]
    assert flag.variants[0]["payload"] == {"type": "string", "value": "old"}
    assert {v["stickiness"] for v in flag.variants} == {"userId"}


def test_flag_variants__bad_json_payload__field_error(rm_client, flag):
    rows = [{"name": "a", "payload_type": "json", "payload_value": "{oops"}]

    response = rm_client.post(reverse("flags:variants", args=[flag.key]), _variants(flag, rows))

    assert response.status_code == 400
    assert "This is not valid JSON" in response.content.decode()


def test_flag_archive__plain_post__redirects_to_list(rm_client, flag):
    response = rm_client.post(reverse("flags:archive", args=[flag.key]))

    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.lifecycle == Flag.Lifecycle.ARCHIVED


# --------------------------------------------------------------------------------------------
# Evaluate and history


def test_flag_evaluate__beta_tester__targeting_match_on_rule_1(support_client, rolled_out):
    url = reverse("flags:evaluate", args=[rolled_out.key])

    response = support_client.get(url, {"environment": "staging", "user_id": "beta-2"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="evaluate-panel"')
    assert '<strong class="eval-reason">TARGETING_MATCH</strong>' in html
    assert "Rule 1: Beta testers" in html
    assert "<code>true</code>" in html


def test_flag_evaluate__someone_else__default_no_rule(support_client, rolled_out):
    url = reverse("flags:evaluate", args=[rolled_out.key])

    html = support_client.get(
        url,
        {"environment": "staging", "user_id": "u-42", "properties": "plan=pro\nemail=a@b.c"},
        **HTMX,
    ).content.decode()

    assert '<strong class="eval-reason">DEFAULT</strong>' in html
    assert '<dd class="eval-rule">None</dd>' in html
    assert "<code>false</code>" in html


def test_flag_evaluate__bad_properties_line__field_error(support_client, rolled_out):
    url = reverse("flags:evaluate", args=[rolled_out.key])

    response = support_client.get(url, {"environment": "staging", "properties": "nonsense"})

    assert response.status_code == 400
    assert "Line 1: write key=value" in response.content.decode()


def test_flag_history__rule_change__who_and_compact_json_diff(rm_client, flag, release_manager):
    env = state_in(flag).environment
    services.rule_add(
        flag=flag,
        environment=env,
        rule={"name": "flexibleRollout", "parameters": {"rollout": "10"}},
        actor=release_manager,
        expected_version=None,
    )
    services.rule_update(
        flag=flag,
        environment=env,
        index=0,
        rule={"name": "flexibleRollout", "parameters": {"rollout": "25"}},
        actor=release_manager,
        expected_version=None,
    )

    response = rm_client.get(reverse("flags:history", args=[flag.key]), **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="flag-history"')
    assert "<strong>Remy</strong> changed <strong>Staging</strong>" in html
    assert "[1].parameters.rollout: &quot;10&quot; → &quot;25&quot;" in html
    assert 'hx-trigger="flagChanged from:body"' in html


@pytest.mark.parametrize("field", ["user_id", "session_id", "properties"])
def test_evaluate_form__lone_surrogate__form_error_not_evaluated(field):
    from flags.forms import EvaluateForm
    from flags.models import Environment

    env = Environment(key="production", name="Production")
    value = "plan=\ud800" if field == "properties" else "\ud800"
    form = EvaluateForm({"environment": "production", field: value}, environments=[env])
    assert not form.is_valid()
    assert "surrogate" in str(form.errors)
