from __future__ import annotations

import logging
import socket
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError
from core.models import FeedToken, Heartbeat, UserPreference, _new_feed_token
from core.when import is_zone

logger = logging.getLogger(__name__)


def heartbeat_record(*, name: str, now: datetime | None = None) -> Heartbeat:
    now = now or timezone.now()
    beat, _ = Heartbeat.objects.update_or_create(
        name=name, defaults={"last_seen": now, "hostname": socket.gethostname()}
    )
    logger.info("heartbeat.recorded name=%s", name)
    return beat


# --------------------------------------------------------------------------------------------
# Feed tokens: one per person and feed (changelog, calendar), made and reset by a POST.


def _scope(scope: str) -> str:
    if scope not in FeedToken.Scope.values:
        raise ValueError(f"Unknown feed scope {scope!r}.")
    return scope


@transaction.atomic
def feed_token_create(*, user: AbstractBaseUser, scope: str) -> FeedToken:
    """The person's token for this feed, with a new secret: creates it, or resets it (the old
    feed address stops working at once). Other feeds' tokens are untouched."""
    token, created = FeedToken.objects.select_for_update().get_or_create(
        user_id=user.pk, scope=_scope(scope)
    )
    if not created:
        token.token = _new_feed_token()
        token.save(update_fields=["token", "updated_at"])
    logger.info(
        "feed_token.%s user_id=%s scope=%s", "created" if created else "reset", user.pk, scope
    )
    return token


def feed_token_revoke(*, user: AbstractBaseUser, scope: str) -> bool:
    """Stop the feed address working; True when there was one."""
    deleted, _ = FeedToken.objects.filter(user_id=user.pk, scope=_scope(scope)).delete()
    if deleted:
        logger.info("feed_token.revoked user_id=%s scope=%s", user.pk, scope)
    return bool(deleted)


# --------------------------------------------------------------------------------------------
# Personal preferences: each person sets their own, nobody else's.


def user_preference_set(
    *, actor: AbstractBaseUser, user: AbstractBaseUser, time_zone: str
) -> UserPreference:
    """Set the time zone `user` reads every time in. Only the person themself may change it
    (PermissionDenied otherwise, admins included: it is a personal setting, not a role)."""
    if actor.pk is None or actor.pk != user.pk:
        raise PermissionDenied("You can change only your own settings.")
    time_zone = (time_zone or "").strip()
    if not is_zone(time_zone):
        raise ApplicationError(
            f"“{time_zone[:64]}” is not a time zone Rollcall knows; pick one from the list "
            "(an IANA name such as Europe/Paris).",
            field="time_zone",
        )
    preference, _ = UserPreference.objects.update_or_create(
        user_id=user.pk, defaults={"time_zone": time_zone}
    )
    logger.info("user_preference.set user_id=%s time_zone=%s", user.pk, time_zone)
    return preference
