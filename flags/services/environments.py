"""Environments and their SDK keys (admins).

An SDK key is a secret that lets a service evaluate one environment's flags; only its hash
is stored.
"""

from __future__ import annotations

import logging
import re

from django.db import transaction
from simple_history.utils import bulk_create_with_history

from core.exceptions import ApplicationError
from flags.models import Environment, Flag, FlagState, SdkKey
from flags.services.common import Actor, actor_user, set_history_user

logger = logging.getLogger(__name__)


@transaction.atomic
def environment_create(
    *,
    key: str,
    name: str,
    actor: Actor,
    is_production: bool = False,
    order: int | None = None,
) -> Environment:
    """Add an environment; every existing flag gets a state in it (off, no rules)."""
    key = (key or "").strip()
    if not re.match(r"^[-a-zA-Z0-9_]+$", key):
        raise ApplicationError(
            "The key may use letters, digits, '-' and '_' (it appears in URLs).", field="key"
        )
    if Environment.objects.filter(key=key).exists():
        raise ApplicationError(f"An environment with the key {key!r} exists.", field="key")
    name = (name or "").strip() or key
    if order is None:
        last = Environment.objects.order_by("-order").values_list("order", flat=True).first()
        order = 0 if last is None else last + 1
    environment = Environment(key=key, name=name, is_production=is_production, order=order)
    environment.full_clean()
    set_history_user(environment, actor)
    environment.save()
    bulk_create_with_history(
        [FlagState(flag=flag, environment=environment) for flag in Flag.objects.only("id")],
        FlagState,
        default_user=actor_user(actor),
    )
    logger.info("environment.created environment=%s", environment.key)
    return environment


@transaction.atomic
def environment_update(
    *,
    environment: Environment,
    actor: Actor,
    name: str | None = None,
    is_production: bool | None = None,
    order: int | None = None,
) -> Environment:
    locked = Environment.objects.select_for_update().get(pk=environment.pk)
    changed = []
    if name is not None:
        name = name.strip()
        if not name:
            raise ApplicationError("Give the environment a name.", field="name")
        if name != locked.name:
            locked.name = name
            changed.append("name")
    if is_production is not None and is_production != locked.is_production:
        locked.is_production = is_production
        changed.append("is_production")
    if order is not None and order != locked.order:
        if order < 0:
            raise ApplicationError("The order must be 0 or more.", field="order")
        locked.order = order
        changed.append("order")
    if changed:
        set_history_user(locked, actor)
        locked.save()
        logger.info("environment.updated environment=%s fields=%s", locked.key, ",".join(changed))
    return locked


@transaction.atomic
def environment_move(
    *, environment: Environment, direction: str, actor: Actor
) -> list[Environment]:
    """Move an environment one place up or down; returns all environments in their new order."""
    if direction not in ("up", "down"):
        raise ApplicationError("Move an environment up or down.", field="direction")
    ordered = list(Environment.objects.select_for_update().order_by("order", "key"))
    index = next((i for i, env in enumerate(ordered) if env.pk == environment.pk), None)
    if index is None:
        raise ApplicationError("That environment no longer exists. Reload the page.")
    target = index - 1 if direction == "up" else index + 1
    if 0 <= target < len(ordered):
        ordered[index], ordered[target] = ordered[target], ordered[index]
    for position, env in enumerate(ordered):
        if env.order != position:
            env.order = position
            set_history_user(env, actor)
            env.save(update_fields=["order", "updated_at"])
    logger.info("environment.moved environment=%s direction=%s", environment.key, direction)
    return ordered


def _sdk_key_secret() -> str:
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


@transaction.atomic
def sdk_key_create(
    *, environment: Environment, name: str, actor: Actor, kind: str = SdkKey.Kind.SERVER
) -> tuple[SdkKey, str]:
    """Create a key; returns it with the raw secret, which is shown once and never stored.

    A `server` key reads the environment's rules (Unleash client API) and evaluates (OFREP);
    a `frontend` key may only ask for evaluated answers (Unleash frontend API, OFREP), so it
    is safe to ship in a browser or a mobile app.
    """
    if kind not in SdkKey.Kind.values:
        raise ApplicationError(
            f"Unknown key kind {kind!r}; use one of {', '.join(SdkKey.Kind.values)}.", field="kind"
        )
    name = (name or "").strip() or f"{environment.key} {kind} key"
    if len(name) > 100:
        raise ApplicationError("Keep the key's name under 100 characters.", field="name")
    # rc_<environment>_<public id>_<secret>: the 4-character public id is what is shown to
    # recognise the key later (SdkKey.masked); the 32 secret characters are never shown again.
    public_id = _sdk_key_secret()[: SdkKey.PUBLIC_ID_LENGTH]
    raw = f"rc_{environment.key}_{public_id}_{_sdk_key_secret()}"
    sdk_key = SdkKey(
        environment=environment,
        name=name,
        kind=kind,
        prefix=public_id,
        key_hash=SdkKey.hash(raw),
        created_by=actor_user(actor),
    )
    set_history_user(sdk_key, actor)
    sdk_key.save()
    logger.info(
        "sdk_key.created sdk_key_id=%s environment=%s kind=%s", sdk_key.pk, environment.key, kind
    )
    return sdk_key, raw


@transaction.atomic
def sdk_key_revoke(*, sdk_key: SdkKey, actor: Actor) -> SdkKey:
    """Revoke a key: refused at once in this process, within FLAGS_SNAPSHOT_TTL elsewhere."""
    from django.utils import timezone

    locked = SdkKey.objects.select_for_update().get(pk=sdk_key.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    set_history_user(locked, actor)
    locked.save()
    key_hash = locked.key_hash

    def _forget() -> None:
        from flags import sdk_auth

        sdk_auth.forget(key_hash)

    transaction.on_commit(_forget)
    logger.info("sdk_key.revoked sdk_key_id=%s environment_id=%s", locked.pk, locked.environment_id)
    return locked
