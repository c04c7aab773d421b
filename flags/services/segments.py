"""Segments: named, reusable constraint sets that rules reference by id."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.db import transaction

from core.exceptions import ApplicationError, ConflictError
from flags.models import FlagState, Segment
from flags.services.common import Actor, environments_bump, set_history_user
from flags.services.validation import validate_constraints

logger = logging.getLogger(__name__)


class SegmentUse(NamedTuple):
    flag_key: str
    environment: str
    rule: int  # 1-based, as people count


def segment_usage(*, segment_ids: Iterable[int] | None = None) -> dict[int, list[SegmentUse]]:
    """Which rules reference each segment: segment id -> [(flag key, environment name, rule)]."""
    wanted = None if segment_ids is None else set(segment_ids)
    usage: dict[int, list[SegmentUse]] = {}
    states = FlagState.objects.select_related("flag", "environment").only(
        "rules", "flag__key", "environment__name", "environment__order", "environment__key"
    )
    for state in states:
        for number, rule in enumerate(state.rules or [], start=1):
            for segment_id in rule.get("segments") or []:
                if wanted is None or segment_id in wanted:
                    usage.setdefault(segment_id, []).append(
                        SegmentUse(state.flag.key, state.environment.name, number)
                    )
    return usage


def _check_segment_name(name: str, *, exclude_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the segment a name.", field="name")
    clash = Segment.objects.filter(name__iexact=name)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise ApplicationError(f"A segment called {name!r} already exists.", field="name")
    return name


@transaction.atomic
def segment_create(
    *,
    name: str,
    actor: Actor,
    description: str = "",
    constraints: list[dict[str, Any]] | None = None,
) -> Segment:
    name = _check_segment_name(name)
    segment = Segment(
        name=name,
        description=(description or "").strip(),
        constraints=validate_constraints(
            constraints or [], where=f"Segment {name}", check_values=True
        ),
    )
    set_history_user(segment, actor)
    segment.save()
    environments_bump()
    logger.info("segment.created segment_id=%s name=%s", segment.pk, segment.name)
    return segment


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    actor: Actor,
    expected_version: int | None = None,
    name: str | None = None,
    description: str | None = None,
    constraints: list[dict[str, Any]] | None = None,
) -> Segment:
    locked = Segment.objects.select_for_update().get(pk=segment.pk)
    if expected_version is not None and locked.version != expected_version:
        raise ConflictError(
            f"Segment {locked.name} was changed by someone else (version {locked.version}, "
            f"you edited {expected_version}). Reload and try again."
        )
    updates: dict[str, Any] = {}
    if name is not None:
        updates["name"] = _check_segment_name(name, exclude_id=locked.pk)
    if description is not None:
        updates["description"] = description.strip()
    if constraints is not None:
        updates["constraints"] = validate_constraints(
            constraints, where=f"Segment {updates.get('name', locked.name)}", check_values=True
        )
    changed = sorted(field for field, value in updates.items() if getattr(locked, field) != value)
    if not changed:
        return locked
    for field in changed:
        setattr(locked, field, updates[field])
    locked.version += 1
    set_history_user(locked, actor)
    locked.save()
    environments_bump()
    logger.info("segment.updated segment_id=%s fields=%s", locked.pk, ",".join(changed))
    return locked


@transaction.atomic
def segment_delete(*, segment: Segment, actor: Actor) -> None:
    """Delete a segment that no rule uses (a rule with a missing segment would be off)."""
    locked = Segment.objects.select_for_update().get(pk=segment.pk)
    uses = segment_usage(segment_ids=[locked.pk]).get(locked.pk, [])
    if uses:
        shown = ", ".join(f"{u.flag_key} ({u.environment}, rule {u.rule})" for u in uses[:5])
        more = f" and {len(uses) - 5} more" if len(uses) > 5 else ""
        raise ApplicationError(
            f"Segment {locked.name!r} is used by {len(uses)} rule(s): {shown}{more}. "
            f"Remove it from those rules first.",
            code="in_use",
        )
    set_history_user(locked, actor)
    segment_id = locked.pk
    locked.delete()
    environments_bump()
    logger.info("segment.deleted segment_id=%s", segment_id)
