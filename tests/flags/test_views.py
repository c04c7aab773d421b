"""The flags UI at its boundary: status codes, htmx partials, HX-Trigger, permissions, errors."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flags import services
from flags.models import Flag, FlagState, SdkKey, Segment
from tests.flags.factories import EnvironmentFactory, FlagFactory, FlagStateFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
BETA = [{"contextName": "userId", "operator": "IN", "values": ["beta-1", "beta-2"]}]


@pytest.fixture
def envs(db):
    return [
        EnvironmentFactory(key="development", name="Development", order=0),
        EnvironmentFactory(key="staging", name="Staging", order=1),
        EnvironmentFactory(key="production", name="Production", order=2, is_production=True),
    ]


@pytest.fixture
def flag(envs):
    return services.flag_create(key="new-checkout", name="New checkout", actor=None)


@pytest.fixture
def beta(db):
    return services.segment_create(name="Beta testers", constraints=BETA, actor=None)


def _state(flag, env_key="staging"):
    return FlagState.objects.get(flag=flag, environment__key=env_key)


def _main(response) -> str:
    html = response.content.decode()
    return html[html.index('<main id="main"') : html.index("</main>")]


def _rule_data(prefix, version, *, rollout=100, segments=(), constraints=(), **extra):
    data = {
        f"{prefix}-title": extra.pop("title", ""),
        f"{prefix}-rollout": str(rollout),
        f"{prefix}-stickiness": extra.pop("stickiness", "default"),
        f"{prefix}-custom_stickiness": extra.pop("custom_stickiness", ""),
        f"{prefix}-group_id": extra.pop("group_id", ""),
        f"{prefix}-segments": [str(s) for s in segments],
        f"{prefix}-expected_version": str(version),
        f"{prefix}-c-TOTAL_FORMS": str(len(constraints)),
        f"{prefix}-c-INITIAL_FORMS": str(len(constraints)),
        f"{prefix}-c-MIN_NUM_FORMS": "0",
        f"{prefix}-c-MAX_NUM_FORMS": "50",
    }
    for i, (field, operator, values) in enumerate(constraints):
        data[f"{prefix}-c-{i}-context_name"] = field
        data[f"{prefix}-c-{i}-operator"] = operator
        data[f"{prefix}-c-{i}-values"] = values
    data.update(extra)
    return data


def _triggers(response) -> dict:
    return json.loads(response["HX-Trigger"])


# --------------------------------------------------------------------------------------------
# Flag list


def test_flag_list__release_manager__table_with_toggles_and_new_flag(rm_client, flag):
    response = rm_client.get(reverse("flags:list"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "new-checkout" in html
    assert 'Turn on<span class="visually-hidden"> new-checkout in Staging' in html
    assert reverse("flags:create") in html
    assert 'hx-trigger="input changed delay:300ms, search"' in html


def test_flag_list__htmx__only_the_table_partial(rm_client, flag):
    response = rm_client.get(reverse("flags:list"), {"q": "check"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="flag-table"')
    assert "<html" not in html
    assert "new-checkout" in html


def test_flag_list__search_and_filters__narrow_the_list(rm_client, envs):
    a = services.flag_create(key="alpha", name="Alpha", actor=None, tags=["web"])
    services.flag_create(key="beta", name="Beta", actor=None, tags=["api"])
    services.flag_toggle(flag=a, environment=envs[1], enabled=True, actor=None)

    def keys(**params):
        html = rm_client.get(reverse("flags:list"), params, **HTMX).content.decode()
        return [k for k in ("alpha", "beta") if f">{k}</a>" in html]

    assert keys() == ["alpha", "beta"]
    assert keys(q="alp") == ["alpha"]
    assert keys(tag="api") == ["beta"]
    assert keys(environment="staging", enabled="on") == ["alpha"]
    assert keys(environment="staging", enabled="off") == ["beta"]


def test_flag_list__archived__hidden_unless_asked(rm_client, flag):
    services.flag_archive(flag=flag, actor=None)

    assert "new-checkout" not in rm_client.get(reverse("flags:list")).content.decode()
    html = rm_client.get(reverse("flags:list"), {"lifecycle": "archived"}).content.decode()
    assert "new-checkout" in html


def _list_queries(client, count: int) -> int:
    envs = list(EnvironmentFactory._meta.model.objects.all())
    existing = Flag.objects.count()
    for i in range(existing, count):
        f = FlagFactory(key=f"flag-{i:04d}", tags=["t"])
        for env in envs:
            FlagStateFactory(flag=f, environment=env, enabled=i % 2 == 0)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("flags:list"))
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_flag_list__queries__constant_in_the_number_of_flags(rm_client, envs):
    few = _list_queries(rm_client, 10)
    many = _list_queries(rm_client, 200)

    assert few == many
    assert many <= 10


def test_flag_list__support__sees_states_but_no_controls(support_client, flag):
    response = support_client.get(reverse("flags:list"))

    main = _main(response)
    assert response.status_code == 200
    assert "new-checkout" in main
    assert "<form" not in main.replace('<form class="filters card" role="search"', "")
    assert "Turn on" not in main
    assert "New flag" not in main


# --------------------------------------------------------------------------------------------
# Toggle


def test_flag_toggle__htmx__partial_with_events_and_state_on(rm_client, flag):
    url = reverse("flags:toggle", args=[flag.key, "staging"])

    response = rm_client.post(url, {"enabled": "on"}, **HTMX)

    assert response.status_code == 200
    assert _state(flag).enabled is True
    triggers = _triggers(response)
    assert "flagChanged" in triggers
    assert triggers["toast"]["message"] == "new-checkout is on in Staging."
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="toggle-new-checkout-staging"')
    assert "Turn off" in html


def test_flag_toggle__plain_post__redirects_to_next(rm_client, flag):
    url = reverse("flags:toggle", args=[flag.key, "staging"])

    response = rm_client.post(url, {"enabled": "on", "next": "/flags/?q=new"})

    assert response.status_code == 302
    assert response["Location"] == "/flags/?q=new"


def test_flag_toggle__production__asks_for_confirmation(rm_client, flag):
    html = rm_client.get(reverse("flags:list")).content.decode()

    production_form = html[html.index("/flags/new-checkout/environments/production/toggle/") :]
    production_form = production_form[: production_form.index("</form>")]
    assert 'hx-confirm="Turn new-checkout on in Production? This is a production environment."' in (
        production_form
    )
    assert "data-confirm=" in production_form
    staging_form = html[html.index("/flags/new-checkout/environments/staging/toggle/") :]
    assert "hx-confirm" not in staging_form[: staging_form.index("</form>")]


def test_flag_toggle__support__403_page_that_says_why(support_client, flag):
    url = reverse("flags:toggle", args=[flag.key, "staging"])

    response = support_client.post(url, {"enabled": "on"})

    assert response.status_code == 403
    assert "Release managers role" in response.content.decode()
    assert _state(flag).enabled is False


def test_flag_toggle__from_detail__rerenders_the_environment_section(rm_client, flag):
    url = reverse("flags:toggle", args=[flag.key, "staging"])

    response = rm_client.post(url, {"enabled": "on", "view": "detail"}, **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="env-section-staging"')
    assert f'value="{_state(flag).version}"' in html


# --------------------------------------------------------------------------------------------
# Create


def test_flag_create__valid__redirects_to_the_flag(rm_client, envs, release_manager):
    response = rm_client.post(
        reverse("flags:create"),
        {"key": "dark-mode", "name": "Dark mode", "type": "boolean", "tags": "ui, web"},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("flags:detail", args=["dark-mode"])
    flag = Flag.objects.get(key="dark-mode")
    assert (flag.tags, flag.owner) == (["ui", "web"], release_manager)


@pytest.mark.parametrize(
    ("key", "error"),
    [("has space", "no spaces"), ("settings", "reserved"), ("-dash", "starting with")],
)
def test_flag_create__bad_key__field_error_not_500(rm_client, envs, key, error):
    response = rm_client.post(reverse("flags:create"), {"key": key, "type": "boolean"})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Flag.objects.exists()


def test_flag_create__duplicate_key__field_error(rm_client, flag):
    response = rm_client.post(reverse("flags:create"), {"key": flag.key, "type": "boolean"})

    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_flag_create__support__403(support_client, envs):
    assert support_client.get(reverse("flags:create")).status_code == 403


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
        environment=_state(flag).environment,
        rules=[{"name": "flexibleRollout", "parameters": {"rollout": "10"}, "segments": [beta.pk]}],
        actor=None,
    )

    response = support_client.get(reverse("flags:detail", args=[flag.key]))

    main = _main(response)
    assert response.status_code == 200
    assert f'Segment: <a href="/flags/segments/{beta.pk}/">Beta testers</a>' in main
    assert "10% of users" in main
    assert 'method="post"' not in main
    assert "hx-post" not in main
    assert "Archive" not in main


def test_flag_detail__unknown_key__404(rm_client, envs):
    assert rm_client.get(reverse("flags:detail", args=["nope"])).status_code == 404


def test_flag_detail__queries__constant_in_history_and_rules(rm_client, flag, beta):
    url = reverse("flags:detail", args=[flag.key])
    with CaptureQueriesContext(connection) as few:
        rm_client.get(url)
    state = _state(flag)
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


# --------------------------------------------------------------------------------------------
# Rules


def test_rule_add__htmx__section_partial_events_and_rule_saved(rm_client, flag, beta):
    state = _state(flag)
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(
        url,
        _rule_data(
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
    assert "flagChanged" in _triggers(response)
    assert response.content.decode().lstrip().startswith('<section id="env-section-staging"')
    rule = _state(flag).rules[0]
    assert rule["segments"] == [beta.pk]
    assert rule["title"] == "Beta testers"
    assert rule["parameters"] == {"rollout": "100", "stickiness": "default", "groupId": flag.key}
    assert rule["constraints"][0]["values"] == ["DE", "FR"]


def test_rule_add__plain_post__redirects_to_the_section(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(url, _rule_data("staging-new", _state(flag).version, rollout=10))

    assert response.status_code == 302
    assert response["Location"].endswith("#env-section-staging")
    assert _state(flag).rules[0]["parameters"]["rollout"] == "10"


def test_rule_add__stale_version__changed_by_someone_else_reload(rm_client, flag):
    state = _state(flag)
    services.flag_toggle(flag=flag, environment=state.environment, enabled=True, actor=None)
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(url, _rule_data("staging-new", state.version), **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "changed by someone else" in html
    assert "Reload the flag" in html
    assert "HX-Trigger" not in response
    assert _state(flag).rules == []


def test_rule_add__custom_stickiness_without_field__field_error(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(
        url, _rule_data("staging-new", _state(flag).version, stickiness="custom")
    )

    assert response.status_code == 400
    assert "Name the context field to stick to." in response.content.decode()
    assert _state(flag).rules == []


def test_rule_add__garbage_percentage__field_error_not_500(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = rm_client.post(url, _rule_data("staging-new", _state(flag).version, rollout="ten"))

    assert response.status_code == 400
    assert "Enter a whole number." in response.content.decode()


def test_rule_add__add_constraint_button__one_more_row_nothing_saved(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])
    data = _rule_data("staging-new", _state(flag).version, constraints=[("plan", "IN", "pro")])
    data["staging-new-c-add"] = "1"

    response = rm_client.post(url, data, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="staging-new-c-1-context_name"' in html
    assert 'value="plan"' in html
    assert '<details class="add-rule" open>' in html
    assert _state(flag).rules == []


def test_rule_add__remove_constraint_button__row_removed(rm_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])
    data = _rule_data(
        "staging-new",
        _state(flag).version,
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
        environment=_state(flag).environment,
        rule={"name": "flexibleRollout", "parameters": {"rollout": "10"}},
        actor=None,
        expected_version=None,
    )
    url = reverse("flags:rule_update", args=[flag.key, "staging", 1])

    response = rm_client.post(url, _rule_data("staging-r1", state.version, rollout=25), **HTMX)

    assert response.status_code == 200
    assert _state(flag).rules[0]["parameters"]["rollout"] == "25"


def test_rule_move_and_delete__htmx__reorder_then_delete(rm_client, flag):
    env = _state(flag).environment
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
        move, {"direction": "up", "expected_version": _state(flag).version}, **HTMX
    )
    assert response.status_code == 200
    assert [r["parameters"]["rollout"] for r in _state(flag).rules] == ["2", "1"]

    delete = reverse("flags:rule_delete", args=[flag.key, "staging", 1])
    response = rm_client.post(delete, {"expected_version": _state(flag).version}, **HTMX)
    assert response.status_code == 200
    assert "flagChanged" in _triggers(response)
    assert [r["parameters"]["rollout"] for r in _state(flag).rules] == ["1"]


def test_rule_delete__stale_version__error_toast_and_nothing_deleted(rm_client, flag):
    env = _state(flag).environment
    services.rule_add(
        flag=flag, environment=env, rule={"name": "default"}, actor=None, expected_version=None
    )

    url = reverse("flags:rule_delete", args=[flag.key, "staging", 1])
    response = rm_client.post(url, {"expected_version": "1"}, **HTMX)

    assert response.status_code == 200
    assert _triggers(response)["toast"]["level"] == "error"
    assert len(_state(flag).rules) == 1


def test_rule_delete__delete_button__asks_for_confirmation(rm_client, flag):
    services.rule_add(
        flag=flag,
        environment=_state(flag).environment,
        rule={"name": "default"},
        actor=None,
        expected_version=None,
    )

    html = rm_client.get(reverse("flags:detail", args=[flag.key])).content.decode()

    assert 'hx-confirm="Delete rule 1 of new-checkout in Staging?"' in html
    assert 'data-confirm="Delete rule 1 of new-checkout in Staging?"' in html


def test_rule_add__support__403(support_client, flag):
    url = reverse("flags:rule_add", args=[flag.key, "staging"])

    response = support_client.post(url, _rule_data("staging-new", 1))

    assert response.status_code == 403
    assert "You do not have permission" in response.content.decode()


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
    assert "flagChanged" in _triggers(response)
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


@pytest.fixture
def rolled_out(flag, beta):
    env = _state(flag).environment
    services.flag_state_update(
        flag=flag,
        environment=env,
        enabled=True,
        rules=[
            {
                "name": "flexibleRollout",
                "parameters": {"rollout": "100"},
                "segments": [beta.pk],
                "title": "Beta testers",
            },
            {"name": "flexibleRollout", "parameters": {"rollout": "0"}},
        ],
        actor=None,
    )
    return flag


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
    env = _state(flag).environment
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


# --------------------------------------------------------------------------------------------
# Segments


def _segment_data(name, constraints, **extra):
    data = {
        "name": name,
        "description": extra.pop("description", ""),
        "expected_version": extra.pop("expected_version", ""),
        "seg-c-TOTAL_FORMS": str(len(constraints)),
        "seg-c-INITIAL_FORMS": str(len(constraints)),
        "seg-c-MIN_NUM_FORMS": "0",
        "seg-c-MAX_NUM_FORMS": "50",
    }
    for i, (field, operator, values) in enumerate(constraints):
        data[f"seg-c-{i}-context_name"] = field
        data[f"seg-c-{i}-operator"] = operator
        data[f"seg-c-{i}-values"] = values
    data.update(extra)
    return data


def test_segment_create__valid__redirects_to_segment(rm_client, db):
    response = rm_client.post(
        reverse("flags:segment_create"),
        _segment_data("Beta testers", [("userId", "IN", "beta-1\nbeta-2")]),
    )

    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("flags:segment", args=[segment.pk])
    assert segment.constraints[0]["values"] == ["beta-1", "beta-2"]


def test_segment_create__constraint_without_values__field_error(rm_client, db):
    response = rm_client.post(
        reverse("flags:segment_create"), _segment_data("Empty", [("userId", "IN", "")])
    )

    assert response.status_code == 400
    assert "Give at least one value." in response.content.decode()
    assert not Segment.objects.exists()


def test_segment_update__htmx__saved(rm_client, beta):
    url = reverse("flags:segment", args=[beta.pk])
    data = _segment_data("Beta testers", [("userId", "IN", "beta-9")], expected_version="1")

    response = rm_client.post(url, data, **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == url
    beta.refresh_from_db()
    assert beta.constraints[0]["values"] == ["beta-9"]


def test_segment_delete__in_use__refused_with_message(rm_client, rolled_out, beta):
    response = rm_client.post(reverse("flags:segment_delete", args=[beta.pk]), follow=True)

    assert "is used by 1 rule(s): new-checkout (Staging, rule 1)" in response.content.decode()
    assert Segment.objects.filter(pk=beta.pk).exists()


def test_segment_pages__support__read_only(support_client, beta):
    page = support_client.get(reverse("flags:segment", args=[beta.pk]))

    assert page.status_code == 200
    assert "userId is one of [beta-1, beta-2]" in _main(page)
    assert 'method="post"' not in _main(page)
    assert support_client.post(reverse("flags:segment", args=[beta.pk]), {}).status_code == 403
    assert support_client.get(reverse("flags:segment_create")).status_code == 403


# --------------------------------------------------------------------------------------------
# Settings


def test_settings__release_manager__403(rm_client, envs):
    assert rm_client.get(reverse("flags:settings")).status_code == 403


def test_settings__support__403_that_names_the_admins_role(support_client, envs):
    response = support_client.get(reverse("flags:settings"))

    assert response.status_code == 403
    assert "Admins role" in response.content.decode()


def test_settings__admin__environments_and_key_forms(admin_client_role, envs):
    response = admin_client_role.get(reverse("flags:settings"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'Create SDK key<span class="visually-hidden"> for Production' in html
    assert "Add an environment" in html


def test_sdk_key_create__htmx__raw_key_shown_once_then_masked(admin_client_role, envs):
    url = reverse("flags:sdk_key_create", args=["staging"])

    response = admin_client_role.post(url, {"key-staging-name": "checkout-service"}, **HTMX)

    html = response.content.decode()
    sdk_key = SdkKey.objects.get()
    raw = html.split('<code id="raw-sdk-key">')[1].split("</code>")[0]
    assert raw.startswith("rc_staging_")
    assert SdkKey.hash(raw) == sdk_key.key_hash
    assert response["Cache-Control"] == "no-store"
    assert 'data-copy="raw-sdk-key"' in html
    again = admin_client_role.get(reverse("flags:settings")).content.decode()
    assert raw not in again
    assert sdk_key.masked in again


def test_sdk_key_revoke__htmx__revoked_with_confirmation(admin_client_role, envs):
    sdk_key, _ = services.sdk_key_create(environment=envs[1], name="svc", actor=None)
    page = admin_client_role.get(reverse("flags:settings")).content.decode()
    assert 'hx-confirm="Revoke the SDK key svc' in page

    response = admin_client_role.post(reverse("flags:sdk_key_revoke", args=[sdk_key.pk]), **HTMX)

    assert response.status_code == 200
    sdk_key.refresh_from_db()
    assert sdk_key.revoked_at is not None
    assert "Revoked" in response.content.decode()


def test_environment_create__admin__added_with_states(admin_client_role, flag):
    response = admin_client_role.post(
        reverse("flags:environment_create"),
        {"new-env-key": "qa", "new-env-name": "QA", "new-env-is_production": ""},
    )

    assert response.status_code == 302
    assert FlagState.objects.filter(flag=flag, environment__key="qa").exists()


def test_environment_create__bad_key__field_error(admin_client_role, envs):
    response = admin_client_role.post(
        reverse("flags:environment_create"),
        {"new-env-key": "q a", "new-env-name": "QA"},
        **HTMX,
    )

    assert response.status_code == 200
    assert "Use letters, digits" in response.content.decode()


def test_environment_move__up__reordered(admin_client_role, envs):
    response = admin_client_role.post(
        reverse("flags:environment_move", args=["production"]), {"direction": "up"}, **HTMX
    )

    assert response.status_code == 200
    assert "environmentsChanged" in _triggers(response)
    order = list(envs[0]._meta.model.objects.values_list("key", flat=True))
    assert order == ["development", "production", "staging"]


# --------------------------------------------------------------------------------------------
# Django admin (read-only; the archive action calls the service)


def test_admin__flags_changelist_and_archive_action(admin_client_role, flag):
    url = reverse("admin:flags_flag_changelist")
    assert admin_client_role.get(url).status_code == 200

    response = admin_client_role.post(
        url, {"action": "archive", "_selected_action": [flag.pk]}, follow=True
    )

    assert response.status_code == 200
    flag.refresh_from_db()
    assert flag.lifecycle == Flag.Lifecycle.ARCHIVED


def test_settings__admin__links_every_admin_section(admin_client_role):
    from django.urls import reverse

    html = admin_client_role.get(reverse("flags:settings")).content.decode()
    for name in ("rollouts:policies", "rollouts:windows", "comms:audiences"):
        assert f'href="{reverse(name)}"' in html
    assert 'href="/admin/auth/user/"' in html
