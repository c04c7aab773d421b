"""Notice templates (release managers): the subject and body a plan or a person starts from,
checked against the whitelisted variables when saved; at most one default per event.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from comms import templating
from comms.models import NoticeTemplate
from comms.services._common import _clean_event, _clean_name, _user
from core.exceptions import ApplicationError

logger = logging.getLogger(__name__)


@transaction.atomic
def template_create(
    *,
    name: str,
    event: str,
    subject: str,
    body: str,
    is_default: bool = False,
    actor: AbstractBaseUser | None = None,
) -> NoticeTemplate:
    name = _clean_name(name, what="template")
    _clean_event(event)
    templating.validate_template(subject=subject, body=body)
    if NoticeTemplate.objects.filter(name__iexact=name).exists():
        raise ApplicationError(f"A template called {name!r} exists already.", field="name")
    if is_default:
        NoticeTemplate.objects.filter(event=event, is_default=True).update(is_default=False)
    template = NoticeTemplate(
        name=name, event=event, subject=subject.strip(), body=body, is_default=is_default
    )
    template._history_user = _user(actor)  # type: ignore[attr-defined]
    template.save()
    logger.info("template.created template_id=%s event=%s", template.id, event)
    return template


@transaction.atomic
def template_update(
    *, template: NoticeTemplate, actor: AbstractBaseUser | None, **fields: Any
) -> NoticeTemplate:
    allowed = {"name", "event", "subject", "body", "is_default"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} of a template.")
    template = NoticeTemplate.objects.select_for_update().get(pk=template.pk)
    if "name" in fields:
        name = _clean_name(fields["name"], what="template")
        if NoticeTemplate.objects.filter(name__iexact=name).exclude(pk=template.pk).exists():
            raise ApplicationError(f"A template called {name!r} exists already.", field="name")
        template.name = name
    if "event" in fields:
        template.event = _clean_event(fields["event"])
    subject = fields.get("subject", template.subject)
    body = fields.get("body", template.body)
    templating.validate_template(subject=subject, body=body)
    template.subject, template.body = subject.strip(), body
    if fields.get("is_default"):
        NoticeTemplate.objects.filter(event=template.event, is_default=True).exclude(
            pk=template.pk
        ).update(is_default=False)
    if "is_default" in fields:
        template.is_default = bool(fields["is_default"])
    template._history_user = _user(actor)  # type: ignore[attr-defined]
    template.save()
    logger.info("template.updated template_id=%s", template.id)
    return template


@transaction.atomic
def template_delete(*, template: NoticeTemplate, actor: AbstractBaseUser | None) -> None:
    logger.info("template.deleted template_id=%s", template.id)
    template.delete()
