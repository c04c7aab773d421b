from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from core.roles import user_roles

# Navigation of the whole product. An entry shows only once its URL exists and the user
# may view it, so sections that are not built yet are never linked.
NAVIGATION = (
    ("Dashboard", "dashboard", None),
    ("Flags", "flags:list", "flags.view_flag"),
    ("Rollouts", "rollouts:list", "rollouts.view_rollout"),
    ("Calendar", "rollouts:calendar", "rollouts.view_rollout"),
    ("Communications", "comms:notices", "comms.view_notice"),
    ("Changelog", "support:changelog", "rollouts.view_release"),
    ("Settings", "flags:settings", "flags.change_environment"),
    ("Failures", "failures", "core.add_discardedfailure"),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": []}
    items = []
    for label, name, perm in NAVIGATION:
        if perm and not user.has_perm(perm):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        items.append(
            {
                "label": label,
                "url": url,
                "active": request.path.startswith(url) if url != "/" else request.path == "/",
            }
        )
    return {"nav_items": items, "user_roles": user_roles(user)}
