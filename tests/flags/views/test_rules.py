"""flags.views.rules at its boundary: the rules editor (add, edit, move, delete, conflicts)."""

from __future__ import annotations

from django.urls import reverse

from flags import services
from tests.flags.views.helpers import HTMX, hx_triggers, rule_form_data, state_in

# --------------------------------------------------------------------------------------------
# Rules


def test_rule_add__htmx__section_partial_events_and_rule_saved(rm_client, flag, beta):
    state = state_in(flag)
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(
        url,
        rule_form_data(
            "staging-new",
            state.version,
            rollout=100,
            title="Beta testers",
            segments=[beta.pk],
            constraints=[("country", "IN", "DE, FR")],
        ),
        **HTMX,
    )

    assert response.status_code == 200
    assert "flagChanged" in hx_triggers(response)
    assert response.content.decode().lstrip().startswith('<section id="env-section-staging"')
    rule = state_in(flag).rules[0]
    assert rule["segments"] == [beta.pk]
    assert rule["title"] == "Beta testers"
    assert rule["parameters"] == {"rollout": "100", "stickiness": "default", "groupId": flag.key}
    assert rule["constraints"][0]["values"] == ["DE", "FR"]


def test_rule_add__plain_post__redirects_to_the_section(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(
        url, rule_form_data("staging-new", state_in(flag).version, rollout=10)
    )

    assert response.status_code == 302
    assert response["Location"].endswith("#env-section-staging")
    assert state_in(flag).rules[0]["parameters"]["rollout"] == "10"


def test_rule_add__stale_version__changed_by_someone_else_reload(rm_client, flag):
    state = state_in(flag)
    services.flag_toggle(flag=flag, environment=state.environment, enabled=True, actor=None)
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(url, rule_form_data("staging-new", state.version), **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "changed by someone else" in html
    assert "Reload the flag" in html
    assert "HX-Trigger" not in response
    assert state_in(flag).rules == []


def test_rule_add__custom_stickiness_without_field__field_error(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(
        url, rule_form_data("staging-new", state_in(flag).version, stickiness="custom")
    )

    assert response.status_code == 400
    assert "Name the context field to stick to." in response.content.decode()
    assert state_in(flag).rules == []


def test_rule_add__garbage_percentage__field_error_not_500(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(
        url, rule_form_data("staging-new", state_in(flag).version, rollout="ten")
    )

    assert response.status_code == 400
    assert "Enter a whole number." in response.content.decode()


def test_rule_add__add_constraint_button__one_more_row_nothing_saved(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])
    data = rule_form_data(
        "staging-new", state_in(flag).version, constraints=[("plan", "IN", "pro")]
    )
    data["staging-new-c-add"] = "1"

    response = rm_client.post(url, data, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="staging-new-c-1-context_name"' in html
    assert 'value="plan"' in html
    assert '<details class="add-rule" open>' in html
    assert state_in(flag).rules == []


def test_rule_add__remove_constraint_button__row_removed(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])
    data = rule_form_data(
        "staging-new",
        state_in(flag).version,
        constraints=[("plan", "IN", "pro"), ("country", "IN", "DE")],
    )
    data["staging-new-c-remove"] = "0"

    html = rm_client.post(url, data, **HTMX).content.decode()

    assert 'value="country"' in html
    assert 'value="plan"' not in html
    assert 'name="staging-new-c-1-context_name"' not in html


def test_rule_update__changes_percentage(rm_client, flag):
    state = services.rule_add(
        flag=flag,
        environment=state_in(flag).environment,
        rule={"name": "flexibleRollout", "parameters": {"rollout": "10"}},
        actor=None,
        expected_version=None,
    )
    url = reverse("flags:rule_update", args=[flag.key, "staging", 1])

    response = rm_client.post(url, rule_form_data("staging-r1", state.version, rollout=25), **HTMX)

    assert response.status_code == 200
    assert state_in(flag).rules[0]["parameters"]["rollout"] == "25"


def test_rule_move_and_delete__htmx__reorder_then_delete(rm_client, flag):
    env = state_in(flag).environment
    for pct in ("1", "2"):
        services.rule_add(
            flag=flag,
            environment=env,
            rule={"name": "flexibleRollout", "parameters": {"rollout": pct}},
            actor=None,
            expected_version=None,
        )
    move = reverse("flags:rule_move", args=[flag.key, "staging", 2])
    response = rm_client.post(
        move, {"direction": "up", "expected_version": state_in(flag).version}, **HTMX
    )
    assert response.status_code == 200
    assert [r["parameters"]["rollout"] for r in state_in(flag).rules] == ["2", "1"]

    delete = reverse("flags:rule_delete", args=[flag.key, "staging", 1])
    response = rm_client.post(delete, {"expected_version": state_in(flag).version}, **HTMX)
    assert response.status_code == 200
    assert "flagChanged" in hx_triggers(response)
    assert [r["parameters"]["rollout"] for r in state_in(flag).rules] == ["1"]


def test_rule_delete__stale_version__error_toast_and_nothing_deleted(rm_client, flag):
    env = state_in(flag).environment
    services.rule_add(
        flag=flag, environment=env, rule={"name": "default"}, actor=None, expected_version=None
    )

    url = reverse("flags:rule_delete", args=[flag.key, "staging", 1])
    response = rm_client.post(url, {"expected_version": "1"}, **HTMX)

    assert response.status_code == 200
    assert hx_triggers(response)["toast"]["level"] == "error"
    assert len(state_in(flag).rules) == 1


def test_rule_delete__delete_button__asks_for_confirmation(rm_client, flag):
    services.rule_add(
        flag=flag,
        environment=state_in(flag).environment,
        rule={"name": "default"},
        actor=None,
        expected_version=None,
    )

    html = rm_client.get(reverse("flags:detail", args=[flag.key])).content.decode()

    assert 'hx-confirm="Delete rule 1 of new-checkout in Staging?"' in html
    assert 'data-confirm="Delete rule 1 of new-checkout in Staging?"' in html


def test_rule_add__support__403(support_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = support_client.post(url, rule_form_data("staging-new", 1))

    assert response.status_code == 403
    assert "You do not have permission" in response.content.decode()
