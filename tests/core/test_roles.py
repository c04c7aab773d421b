import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from core.roles import ADMINS, RELEASE_MANAGERS, SUPPORT, permission_denied_message


@pytest.mark.django_db
def test_groups__created_by_migration_with_permissions():
    names = set(Group.objects.values_list("name", flat=True))
    assert {RELEASE_MANAGERS, SUPPORT, ADMINS} <= names
    admins = Group.objects.get(name=ADMINS)
    assert admins.permissions.filter(codename="change_user").exists()


def test_support__cannot_change_anything(support_user):
    perms = support_user.get_all_permissions()
    assert perms, "support must at least view"
    assert all(".view_" in p for p in perms)


def test_release_manager__cannot_manage_users(release_manager):
    assert not release_manager.has_perm("auth.change_user")


def test_permission_denied_message__names_role():
    message = permission_denied_message("core.change_heartbeat")
    assert "Admins" in message


@pytest.mark.django_db
def test_load_demo__twice__changes_nothing():
    from django.contrib.auth.models import User

    call_command("load_demo")
    snapshot = sorted(User.objects.values_list("username", "password"))
    call_command("load_demo")
    assert sorted(User.objects.values_list("username", "password")) == snapshot
    assert {u for u, _ in snapshot} >= {"admin", "release", "approver", "support"}
