"""Releases: what is rolled out (name, version, changelog, known issues, its flags)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction

from core.exceptions import ApplicationError
from flags.models import Flag
from rollouts.models import Release
from rollouts.services.common import _user

logger = logging.getLogger(__name__)


_RELEASE_FIELDS = {
    "name", "version", "summary", "changelog", "label", "known_issues", "owner", "is_public",
}  # fmt: skip


def _check_unique(name: str, version: str, *, pk: int | None = None) -> None:
    """Two releases with the same name and version cannot be told apart anywhere."""
    same = Release.objects.filter(
        name__iexact=(name or "").strip(), version__iexact=(version or "").strip()
    )
    if pk is not None:
        same = same.exclude(pk=pk)
    if same.exists():
        what = f"{name.strip()} {(version or '').strip()}".strip()
        raise ApplicationError(
            f"A release “{what}” exists already; open it, or give this one another version.",
            field="version",
        )


@transaction.atomic
def release_create(
    *,
    name: str,
    version: str = "",
    summary: str = "",
    changelog: str = "",
    label: str = Release.Label.NEW,
    known_issues: str = "",
    owner: User | None = None,
    flags: Iterable[Flag] = (),
    is_public: bool = False,
    actor: AbstractBaseUser | None,
) -> Release:
    if not (name or "").strip():
        raise ApplicationError("Give the release a name.", field="name")
    if label not in Release.Label.values:
        raise ApplicationError(
            f"Unknown label {label!r}; use one of {', '.join(Release.Label.values)}.", field="label"
        )
    _check_unique(name, version)
    release = Release(
        name=name.strip(),
        version=(version or "").strip(),
        summary=summary or "",
        changelog=changelog or "",
        label=label,
        known_issues=known_issues or "",
        owner=owner if owner is not None else _user(actor),
        is_public=is_public,
    )
    user = _user(actor)
    if user is not None:
        release._history_user = user  # type: ignore[attr-defined]
    release.full_clean()
    release.save()
    flag_list = list(flags)
    if flag_list:
        release.flags.set(flag_list)
    logger.info("release.created release_id=%s name=%s", release.id, release.name)
    return release


@transaction.atomic
def release_update(*, release: Release, actor: AbstractBaseUser | None, **fields: Any) -> Release:
    unknown = set(fields) - _RELEASE_FIELDS - {"flags"}
    if unknown:
        raise ApplicationError(
            f"Release has no field(s) {', '.join(sorted(unknown))}.", field=sorted(unknown)[0]
        )
    release = Release.objects.select_for_update().get(pk=release.pk)
    flags = fields.pop("flags", None)
    if "name" in fields and not (fields["name"] or "").strip():
        raise ApplicationError("Give the release a name.", field="name")
    if "label" in fields and fields["label"] not in Release.Label.values:
        raise ApplicationError(f"Unknown label {fields['label']!r}.", field="label")
    for name, value in fields.items():
        setattr(release, name, value.strip() if name in {"name", "version"} else value)
    if "name" in fields or "version" in fields:
        _check_unique(release.name, release.version, pk=release.pk)
    user = _user(actor)
    if user is not None:
        release._history_user = user  # type: ignore[attr-defined]
    release.full_clean()
    release.save()
    if flags is not None:
        release.flags.set(list(flags))
    logger.info("release.updated release_id=%s fields=%s", release.id, ",".join(sorted(fields)))
    return release
