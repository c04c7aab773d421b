"""Shared by the flags UI tests: htmx headers, form data builders, response readers."""

from __future__ import annotations

import json

from flags.models import FlagState

HTMX = {"HTTP_HX_REQUEST": "true"}
BETA = [{"contextName": "userId", "operator": "IN", "values": ["beta-1", "beta-2"]}]


def state_in(flag, env_key="staging"):
    return FlagState.objects.get(flag=flag, environment__key=env_key)


def main_html(response) -> str:
    html = response.content.decode()
    return html[html.index('<main id="main"') : html.index("</main>")]


def rule_form_data(prefix, version, *, rollout=100, segments=(), constraints=(), **extra):
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


def hx_triggers(response) -> dict:
    return json.loads(response["HX-Trigger"])
