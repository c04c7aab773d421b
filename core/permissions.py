from __future__ import annotations

from typing import Any

from rest_framework.permissions import DjangoModelPermissions

from core.roles import permission_denied_message


class ModelPermissions(DjangoModelPermissions):
    """Model permissions for the API, including `view_*` for reads.

    Views without a queryset name their permission instead:
    `required_permissions = {"GET": "flags.view_flag", "POST": "flags.change_flag"}`.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Any, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        required = getattr(view, "required_permissions", None)
        if required is not None:
            perm = required.get(request.method) if isinstance(required, dict) else required
            if perm is None:
                return request.method == "OPTIONS"
            if not request.user.has_perm(perm):
                self.message = permission_denied_message(perm)
                return False
            return True
        allowed = super().has_permission(request, view)
        if not allowed:
            self.message = "You do not have permission to do this; ask an admin for the role."
        return allowed
