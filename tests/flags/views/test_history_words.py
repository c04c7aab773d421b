"""Flag history says rule changes in words (the exact JSON change stays one click away)."""

from __future__ import annotations

from django.urls import reverse

from flags import services
from tests.flags.views.helpers import HTMX, state_in


def test_flag_history__rule_change__in_words(rm_client, flag, release_manager):
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
        rule={"name": "flexibleRollout", "parameters": {"rollout": "25", "stickiness": "userId"}},
        actor=release_manager,
        expected_version=None,
    )
    html = rm_client.get(reverse("flags:history", args=[flag.key]), **HTMX).content.decode()
    assert "<li>Rule 1: 10% of users → 25% of users (by userId)</li>" in html
    assert "<li>Rule 1 added: 10% of users</li>" in html
    words = html.split("<details>", 1)[0]
    assert "parameters" not in words and "{" not in words
