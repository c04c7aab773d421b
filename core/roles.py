"""The three roles of Rollcall and the permissions they carry.

Groups are created by a data migration; their permissions are (re)synchronised after every
migrate so that models added by later apps are covered without touching old migrations.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied

RELEASE_MANAGERS = "Release managers"
SUPPORT = "Support"
ADMINS = "Admins"
ROLES = (RELEASE_MANAGERS, SUPPORT, ADMINS)

# The apps whose models the roles act on.
DOMAIN_APPS = ("core", "flags", "rollouts", "comms")
# Models only admins may change (settings, keys, windows, users).
ADMIN_ONLY_MODELS = {
    "core.heartbeat",
    "core.discardedfailure",
    "flags.environment",
    "flags.sdkkey",
    "rollouts.freezewindow",
    "rollouts.approvalpolicy",
    "rollouts.prometheussource",
    "comms.channel",
    "comms.audience",
}
# Models holding secrets: Support may not even view them.
SECRET_MODELS = {"flags.sdkkey", "comms.channel", "rollouts.prometheussource"}
ADMIN_EXTRA_APPS = ("auth", "authtoken", "django_celery_beat")

ROLE_DESCRIPTIONS = {
    RELEASE_MANAGERS: "edit flags, rollouts and notices",
    SUPPORT: "read everything except secrets",
    ADMINS: "settings, SDK keys, channels and users",
}


def _permission_codenames(role: str, perms: list[tuple[int, str, str]]) -> list[int]:
    """perms: (id, app_label, codename) triples; returns the ids this role gets."""
    chosen: list[int] = []
    for pk, app_label, codename in perms:
        action, _, model = codename.partition("_")
        label = f"{app_label}.{model}"
        in_domain = app_label in DOMAIN_APPS
        if role == ADMINS:
            if in_domain or app_label in ADMIN_EXTRA_APPS:
                chosen.append(pk)
        elif role == SUPPORT:
            if in_domain and action == "view" and label not in SECRET_MODELS:
                chosen.append(pk)
        elif role == RELEASE_MANAGERS and in_domain:
            if (action == "view" and label not in SECRET_MODELS) or (
                label not in ADMIN_ONLY_MODELS and action in {"add", "change", "delete"}
            ):
                chosen.append(pk)
            elif action not in {"view", "add", "change", "delete"} and label not in SECRET_MODELS:
                # Custom permissions such as "approve_rollout" belong to release managers.
                chosen.append(pk)
    return chosen


def sync_roles(group_model: Any, permission_model: Any) -> None:
    perms = list(
        permission_model.objects.select_related("content_type").values_list(
            "id", "content_type__app_label", "codename"
        )
    )
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.set(_permission_codenames(role, perms))


def sync_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", None) != "core":
        return
    from django.contrib.auth.models import Group, Permission

    sync_roles(Group, Permission)


def role_for_permission(perm: str) -> str:
    """The role a person needs for a permission, in words."""
    app_label, _, codename = perm.partition(".")
    action, _, model = codename.partition("_")
    label = f"{app_label}.{model}"
    if (label in ADMIN_ONLY_MODELS and action != "view") or label in SECRET_MODELS:
        return ADMINS
    if action == "view":
        return SUPPORT
    return RELEASE_MANAGERS


def permission_denied_message(perm: str, what: str | None = None) -> str:
    role = role_for_permission(perm)
    doing = what or perm.partition(".")[2].replace("_", " ")
    return (
        f"You do not have permission to {doing}. This needs the {role} role "
        f"({ROLE_DESCRIPTIONS[role]}); ask an admin if you need it."
    )


def require(perm: str, what: str | None = None) -> Callable[[Callable[..., Any]], Any]:
    """View decorator: login required, then 403 with a message that says why."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        from django.contrib.auth.views import redirect_to_login

        @wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_perm(perm):
                raise PermissionDenied(permission_denied_message(perm, what))
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def user_roles(user: Any) -> list[str]:
    if not user.is_authenticated:
        return []
    if user.is_superuser:
        return [ADMINS]
    return sorted(g.name for g in user.groups.all() if g.name in ROLES)
