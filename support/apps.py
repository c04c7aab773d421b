from __future__ import annotations

from typing import Any

from django.apps import AppConfig

CHANGELOG_PERM = "rollouts.view_release"


def support_panel(request: Any) -> tuple[str, dict[str, Any]] | None:
    """Dashboard panel of support staff: recent changes, live rollouts, problems, links."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm(CHANGELOG_PERM):
        return None
    from support.selectors import support_summary

    return "support/_dashboard_panel.html", {"support_summary": support_summary()}


class SupportConfig(AppConfig):
    """Pages for support staff: changelog with live exposure, release detail with doc links,
    customer lookup, Atom feeds and the public release notes. No models of its own: it reads
    rollouts and flags, and comms' DocLink and FeedToken (which comms' templates use too)."""

    name = "support"
    verbose_name = "Support"

    def ready(self) -> None:
        # Register the tasks in every process (web too): services enqueue them by name.
        import support.tasks  # noqa: F401
        from core.dashboard import register_panel

        register_panel(support_panel)
