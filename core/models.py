from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class BaseModel(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Heartbeat(models.Model):
    """Last time a periodic process proved it is alive (beat scheduled it, a worker ran it)."""

    name = models.CharField(max_length=64, primary_key=True)
    last_seen = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = "heartbeat"

    def __str__(self) -> str:
        return f"{self.name} at {self.last_seen.isoformat()}"


class DiscardedFailure(models.Model):
    """Who gave up on a failed item (a dead event, delivery or rollout step), when and why.

    The app that owns the item changes its state; this row is the record people read later
    on the Failures page. `source` and `key` name the item within its app.
    """

    source = models.CharField(max_length=64)
    key = models.CharField(max_length=64)
    title = models.CharField(max_length=300)
    error = models.TextField(blank=True)
    reason = models.TextField()
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    discarded_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ("-discarded_at", "-id")
        verbose_name = "discarded failure"

    def __str__(self) -> str:
        return f"{self.title} (discarded {self.discarded_at.isoformat()})"


def _new_feed_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


class FeedToken(BaseModel):
    """A personal secret in one kind of feed URL (the changelog's Atom feed, the rollout
    calendar's iCalendar feed). Each scope has its own token, created on request (POST) and
    reset or revoked on its own, so sharing one feed never exposes the other."""

    class Scope(models.TextChoices):
        CHANGELOG = "changelog", "Changelog feed (Atom)"
        CALENDAR = "calendar", "Rollout calendar (iCalendar)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feed_tokens"
    )
    scope = models.CharField(max_length=16, choices=Scope.choices)
    token = models.CharField(max_length=64, default=_new_feed_token)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "scope"], name="feed_token_per_user_scope"),
            # Unique per scope: migrated tokens keep working for both feeds until reset.
            models.UniqueConstraint(fields=["scope", "token"], name="feed_token_unique_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} token of {self.user}"


class UserPreference(BaseModel):
    """How one person wants Rollcall shown: the time zone every page shows times in.

    No row means the defaults (settings.TIME_ZONE). Written by `user_preference_set` only.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    time_zone = models.CharField(
        max_length=64,
        default=settings.TIME_ZONE,
        help_text="IANA time zone; every page shows times in it.",
    )

    class Meta:
        verbose_name = "user preference"

    def __str__(self) -> str:
        return f"Preferences of {self.user}"
