"""flags.views.flag_list at its boundary: the list, kill switches, creating a flag."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from flags import services
from flags.models import Flag
from tests.flags.factories import EnvironmentFactory, FlagFactory, FlagStateFactory
from tests.flags.views.helpers import HTMX, hx_triggers, main_html, state_in

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

    main = main_html(response)
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
    assert state_in(flag).enabled is True
    triggers = hx_triggers(response)
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
    assert state_in(flag).enabled is False


def test_flag_toggle__from_detail__rerenders_the_environment_section(rm_client, flag):
    url = reverse("flags:toggle", args=[flag.key, "staging"])

    response = rm_client.post(url, {"enabled": "on", "view": "detail"}, **HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="env-section-staging"')
    assert f'value="{state_in(flag).version}"' in html


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
