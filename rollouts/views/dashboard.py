"""The dashboard panels rollouts contributes (registered in `RolloutsConfig.ready`)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from rollouts import selectors, services


def active_rollouts_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if not request.user.has_perm("rollouts.view_rollout"):
        return None
    rows, total = selectors.active_rollouts()
    return "rollouts/_panel_active.html", {"rollouts_active": rows, "rollouts_active_total": total}


def upcoming_changes_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if not request.user.has_perm("rollouts.view_rollout"):
        return None
    return "rollouts/_panel_upcoming.html", {"rollouts_upcoming": selectors.upcoming_changes()}


def approvals_panel(request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
    if not request.user.has_perm(services.APPROVE_PERMISSION):
        return None
    return "rollouts/_panel_approvals.html", {
        "approvals_waiting": selectors.approval_queue(user=request.user, limit=8)
    }
