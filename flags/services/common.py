"""What every flag service shares: the actor type, history authorship, state locks and the
config-version bump.

Any change that affects evaluation bumps the environment's `config_version` in the same
transaction (`environments_bump`), so cached snapshots are rebuilt (see `flags.snapshot`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction
from django.db.models import F

from flags.models import Environment, Flag, FlagState

#: Who made a change: a user, an anonymous request's user (recorded as nobody) or no one.
Actor = AbstractBaseUser | AnonymousUser | None


def actor_user(actor: Actor) -> User | None:
    """The user to record as author/owner, or None for anonymous and system changes."""
    return actor if isinstance(actor, User) else None


def environments_bump(*, environment_ids: Iterable[int] | None = None) -> None:
    """Move the config version of some (or all) environments; snapshots follow."""
    qs = Environment.objects.all()
    if environment_ids is not None:
        qs = qs.filter(id__in=list(environment_ids))
    qs.update(config_version=F("config_version") + 1)

    def _invalidate() -> None:
        from flags import snapshot

        snapshot.publish_versions()
        snapshot.invalidate_local()

    transaction.on_commit(_invalidate)


def lock_state(flag: Flag, environment: Environment) -> FlagState:
    state, _ = FlagState.objects.select_for_update().get_or_create(
        flag=flag, environment=environment
    )
    return state


def set_history_user(obj: Any, actor: Actor) -> None:
    if actor is not None and getattr(actor, "is_authenticated", False):
        obj._history_user = actor
