"""Demo users, one per role. Passwords are for local demos only."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission, User

from core.roles import ADMINS, RELEASE_MANAGERS, SUPPORT, sync_roles

DEMO_PASSWORD = "rollcall-demo"  # noqa: S105
DEMO_USERS = (
    # username, full name, role, email
    ("admin", "Ada Admin", ADMINS, "admin@example.com"),
    ("release", "Remy Release", RELEASE_MANAGERS, "release@example.com"),
    ("approver", "Alex Approver", RELEASE_MANAGERS, "approver@example.com"),
    ("support", "Sam Support", SUPPORT, "support@example.com"),
)


def load(*, stdout: Any) -> None:
    sync_roles(Group, Permission)
    for username, full_name, role, email in DEMO_USERS:
        first, _, last = full_name.partition(" ")
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": email},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.is_staff = role == ADMINS
            user.save()
            stdout.write(f"Created demo user {username} ({role}).")
        user.groups.add(Group.objects.get(name=role))
