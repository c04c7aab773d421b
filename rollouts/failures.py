"""What rollouts contributes to the Failures page: scheduled steps that keep failing (backing
off, or held with the error). Registered in `RolloutsConfig`."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from core.exceptions import ApplicationError
from core.failures import DEAD, STUCK, FailureItem
from rollouts import services
from rollouts.models import AdvanceFailure


def _rollout_id(key: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise ApplicationError("That item does not exist.", field="key") from None


def _item(failure: AdvanceFailure) -> FailureItem:
    rollout = failure.rollout
    return FailureItem(
        source=AdvanceFailures.name,
        key=str(rollout.pk),
        kind="Scheduled phase change",
        title=f"Rollout {rollout.key}: phase {failure.phase_index + 2}",
        state=DEAD if failure.hold_id else STUCK,
        error=failure.last_error,
        attempts=failure.attempts,
        failed_at=failure.failed_at,
        next_attempt_at=failure.retry_at,
        url=reverse("rollouts:detail", args=[rollout.key]),
    )


class AdvanceFailures:
    name = "rollouts-advance"

    def items(self, *, limit: int) -> list[FailureItem]:
        return [_item(f) for f in services.advance_failures_open(limit=limit)]

    def retry(self, *, key: str, actor: AbstractBaseUser) -> str:
        rollout = services.advance_failure_retry(rollout_id=_rollout_id(key), actor=actor)
        return f"Rollout {rollout.key} tries its next phase again at the scheduler's next tick."

    def discard(self, *, key: str, actor: AbstractBaseUser, reason: str) -> FailureItem:
        found = (
            AdvanceFailure.objects.select_related("rollout")
            .filter(rollout_id=_rollout_id(key))
            .first()
        )
        if found is None:
            raise ApplicationError("That rollout's scheduled step is not failing any more.")
        item = _item(found)
        services.advance_failure_discard(rollout_id=found.rollout_id, actor=actor, reason=reason)
        return item
