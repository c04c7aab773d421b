"""Communication: doc links, feeds (support), and notices (audiences, channels, deliveries)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import URLValidator
from django.db import models
from simple_history.models import HistoricalRecords

from core.models import BaseModel

http_url_validator = URLValidator(
    schemes=["http", "https"], message="Enter an http:// or https:// address."
)


class DocLink(BaseModel):
    """A link to user documentation on a release or a flag, checked periodically."""

    class Kind(models.TextChoices):
        USER_GUIDE = "user_guide", "User guide"
        RELEASE_NOTES = "release_notes", "Release notes"
        FAQ = "faq", "FAQ"
        RUNBOOK = "runbook", "Runbook"
        API_DOCS = "api_docs", "API docs"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public"
        INTERNAL = "internal", "Internal"

    class Status(models.TextChoices):
        UNCHECKED = "unchecked", "Not checked yet"
        OK = "ok", "OK"
        BROKEN = "broken", "Broken"

    release = models.ForeignKey(
        "rollouts.Release",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="doc_links",
    )
    flag = models.ForeignKey(
        "flags.Flag", null=True, blank=True, on_delete=models.CASCADE, related_name="doc_links"
    )
    title = models.CharField(max_length=200)
    url = models.URLField(max_length=1000, validators=[http_url_validator])
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.USER_GUIDE)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.INTERNAL
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNCHECKED)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ("kind", "title")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(release__isnull=False) | models.Q(flag__isnull=False),
                name="doclink_has_owner",
            )
        ]

    def __str__(self) -> str:
        return self.title


def _new_token() -> str:
    return secrets.token_urlsafe(24)


class FeedToken(BaseModel):
    """A personal secret in feed URLs (Atom changelog, iCalendar), so readers can subscribe."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feed_token"
    )
    token = models.CharField(max_length=64, unique=True, default=_new_token)

    def __str__(self) -> str:
        return f"feed token of {self.user}"
