"""Audiences and their channels (admins): who hears about rollouts and through what (email,
Slack, Teams, generic webhooks), with contacts parsed and checked, webhook addresses
validated and signing secrets created and rotated.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from email.utils import parseaddr
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from comms.models import Audience, Channel, Notice, http_url_validator
from comms.services._common import _clean_name, _user
from core.exceptions import ApplicationError

logger = logging.getLogger(__name__)


def _clean_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (name or "").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplicationError(
            f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC.",
            field="timezone",
        ) from exc
    return name


def _clean_email(value: str, *, field: str, where: str) -> str:
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError as exc:
        raise ApplicationError(f"{where}: {value!r} is not an email address.", field=field) from exc
    return value.lower()


def parse_contacts(value: str | Iterable[Any]) -> list[dict[str, str]]:
    """Contacts from text ("Name <email>" per line) or a list of {"name", "email"} / strings."""
    items: list[Any] = value.splitlines() if isinstance(value, str) else list(value or [])
    contacts: list[dict[str, str]] = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        if isinstance(item, dict):
            name, email = str(item.get("name", "")), str(item.get("email", ""))
        else:
            line = str(item).strip()
            if not line:
                continue
            name, email = parseaddr(line)
            email = email or line
        email = _clean_email(email, field="contacts", where=f"Contact {number}")
        if email in seen:
            continue
        seen.add(email)
        contacts.append({"name": name.strip(), "email": email})
    return contacts


def parse_recipients(value: str | Iterable[str]) -> list[str]:
    return [c["email"] for c in parse_contacts(value)] if value else []


@transaction.atomic
def audience_create(
    *,
    name: str,
    kind: str = Audience.Kind.CUSTOM,
    timezone: str = "UTC",
    contacts: str | Iterable[Any] = (),
    description: str = "",
    actor: AbstractBaseUser | None = None,
) -> Audience:
    name = _clean_name(name, what="audience")
    if kind not in Audience.Kind.values:
        raise ApplicationError(f"Unknown audience kind {kind!r}.", field="kind")
    if Audience.objects.filter(name__iexact=name).exists():
        raise ApplicationError(f"An audience called {name!r} exists already.", field="name")
    audience = Audience(
        name=name,
        kind=kind,
        timezone=_clean_timezone(timezone),
        contacts=parse_contacts(contacts),
        description=description or "",
    )
    audience._history_user = _user(actor)  # type: ignore[attr-defined]
    audience.save()
    logger.info("audience.created audience_id=%s kind=%s", audience.id, kind)
    return audience


@transaction.atomic
def audience_update(
    *, audience: Audience, actor: AbstractBaseUser | None, **fields: Any
) -> Audience:
    allowed = {"name", "kind", "timezone", "contacts", "description"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} of an audience.")
    audience = Audience.objects.select_for_update().get(pk=audience.pk)
    if "name" in fields:
        name = _clean_name(fields["name"], what="audience")
        if Audience.objects.filter(name__iexact=name).exclude(pk=audience.pk).exists():
            raise ApplicationError(f"An audience called {name!r} exists already.", field="name")
        audience.name = name
    if "kind" in fields:
        if fields["kind"] not in Audience.Kind.values:
            raise ApplicationError(f"Unknown audience kind {fields['kind']!r}.", field="kind")
        audience.kind = fields["kind"]
    if "timezone" in fields:
        audience.timezone = _clean_timezone(fields["timezone"])
    if "contacts" in fields:
        audience.contacts = parse_contacts(fields["contacts"])
    if "description" in fields:
        audience.description = fields["description"] or ""
    audience._history_user = _user(actor)  # type: ignore[attr-defined]
    audience.save()
    logger.info("audience.updated audience_id=%s", audience.id)
    return audience


@transaction.atomic
def audience_delete(*, audience: Audience, actor: AbstractBaseUser | None) -> None:
    if Notice.objects.filter(audience=audience).exists():
        raise ApplicationError(
            f"{audience.name} has notices; audiences with a history cannot be deleted. "
            "Disable its channels instead."
        )
    logger.info("audience.deleted audience_id=%s", audience.id)
    audience.delete()


def _clean_webhook_url(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise ApplicationError("Enter the webhook address.", field="url")
    try:
        http_url_validator(url)
    except ValidationError as exc:
        raise ApplicationError(
            "Enter an http:// or https:// address, e.g. https://hooks.slack.com/services/...",
            field="url",
        ) from exc
    return url


@transaction.atomic
def channel_create(
    *,
    audience: Audience,
    kind: str,
    name: str,
    url: str = "",
    recipients: str | Iterable[str] = (),
    is_enabled: bool = True,
    actor: AbstractBaseUser | None = None,
) -> Channel:
    if kind not in Channel.Kind.values:
        raise ApplicationError(f"Unknown channel kind {kind!r}.", field="kind")
    name = _clean_name(name, what="channel")
    if Channel.objects.filter(audience=audience, name__iexact=name).exists():
        raise ApplicationError(f"{audience.name} already has a channel {name!r}.", field="name")
    channel = Channel(audience=audience, kind=kind, name=name, is_enabled=is_enabled)
    if kind == Channel.Kind.EMAIL:
        channel.recipients = parse_recipients(recipients)
        if not channel.recipients and not audience.contact_emails:
            raise ApplicationError(
                f"List the recipients, or add contacts to {audience.name} first.",
                field="recipients",
            )
    else:
        channel.url = _clean_webhook_url(url)
    if kind == Channel.Kind.WEBHOOK:
        channel.signing_secret = secrets.token_hex(32)
    channel.save()
    logger.info(
        "channel.created channel_id=%s audience_id=%s kind=%s", channel.id, audience.id, kind
    )
    return channel


@transaction.atomic
def channel_update(
    *,
    channel: Channel,
    actor: AbstractBaseUser | None,
    name: str | None = None,
    url: str | None = None,
    recipients: str | Iterable[str] | None = None,
    is_enabled: bool | None = None,
) -> Channel:
    """Blank `url` keeps the stored one: forms never show (or resend) the secret."""
    channel = Channel.objects.select_for_update().select_related("audience").get(pk=channel.pk)
    if name is not None:
        name = _clean_name(name, what="channel")
        clash = Channel.objects.filter(audience=channel.audience, name__iexact=name).exclude(
            pk=channel.pk
        )
        if clash.exists():
            raise ApplicationError(f"{channel.audience.name} has a channel {name!r}.", field="name")
        channel.name = name
    if url and channel.kind != Channel.Kind.EMAIL:
        channel.url = _clean_webhook_url(url)
    if recipients is not None and channel.kind == Channel.Kind.EMAIL:
        channel.recipients = parse_recipients(recipients)
    if is_enabled is not None:
        channel.is_enabled = is_enabled
    channel.save()
    logger.info("channel.updated channel_id=%s", channel.id)
    return channel


@transaction.atomic
def channel_rotate_secret(*, channel: Channel, actor: AbstractBaseUser | None) -> str:
    """A new signing secret (generic webhooks); returned once so the admin can copy it."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    if channel.kind != Channel.Kind.WEBHOOK:
        raise ApplicationError("Only generic webhooks are signed.", field="kind")
    channel.signing_secret = secrets.token_hex(32)
    channel.save(update_fields=["signing_secret", "updated_at"])
    logger.info("channel.secret_rotated channel_id=%s", channel.id)
    return channel.signing_secret


@transaction.atomic
def channel_delete(*, channel: Channel, actor: AbstractBaseUser | None) -> None:
    logger.info("channel.deleted channel_id=%s", channel.id)
    channel.delete()
