from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from core.roles import user_roles

# Navigation of the whole product. An entry shows only once its URL exists and the user
# may view it, so sections that are not built yet are never linked.
NAVIGATION = (
    ("Dashboard", "dashboard", None),
    ("Flags", "flags:list", "flags.view_flag"),
    ("Releases", "rollouts:releases", "rollouts.view_release"),
    ("Rollouts", "rollouts:list", "rollouts.view_rollout"),
    ("Approvals", "rollouts:approvals", "rollouts.view_rollout"),
    ("Calendar", "rollouts:calendar", "rollouts.view_rollout"),
    ("Communications", "comms:notices", "comms.view_notice"),
    ("Changelog", "support:changelog", "rollouts.view_release"),
    ("Customer lookup", "support:lookup", "flags.view_flag"),
    ("Settings", "flags:settings", "flags.change_environment"),
    ("Failures", "failures", "core.add_discardedfailure"),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": []}
    items: list[dict[str, Any]] = []
    for label, name, perm in NAVIGATION:
        if perm and not user.has_perm(perm):
            continue
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "active": False})
    # The page belongs to the entry with the longest matching address (Releases, not
    # Rollouts, for /rollouts/releases/).
    matching = [
        item
        for item in items
        if (request.path.startswith(item["url"]) if item["url"] != "/" else request.path == "/")
    ]
    if matching:
        max(matching, key=lambda item: len(item["url"]))["active"] = True
    return {
        "nav_items": items,
        "user_roles": user_roles(user),
        # The header says which zone every time on the page is in (core/when.py).
        "viewer_time_zone": timezone.get_current_timezone_name(),
    }
