"""What a scheduler batch reads once instead of once per step: the approval policies and the
active freeze/allow windows of every environment, and the phases of the batch's rollouts
(three queries, on first use).

A batch is short (`SWEEP_CACHE_STEPS` steps), so a policy or window changed meanwhile is seen
by the next batch, as a change committed just after a step's read always was. Phases are
different: a step must apply the plan as it is under the row lock, so the batch's copy is
only used when the locked rollout's version is the one read with it (see `SweepCache.phases`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import F

from rollouts.models import ApprovalPolicy, FreezeWindow, Phase, Rollout
from rollouts.services.common import _phases
from rollouts.services.windows import window_spec
from rollouts.windows import WindowSpec

# Steps that share one cache before it is read again (a sweep message holds about as many).
SWEEP_CACHE_STEPS = 20


@dataclass
class SweepCache:
    """Policies and window specs by environment id, each loaded in one query when first asked;
    the phases of the batch's rollouts (`rollout_ids`), loaded in one query when first asked."""

    rollout_ids: Sequence[int] = ()
    _policies: dict[int, ApprovalPolicy] | None = None
    _windows: list[WindowSpec] | None = None
    _by_env: dict[int | None, list[WindowSpec]] = field(default_factory=dict)
    # Rollout id -> (the rollout's version read with its phases, the phases in order).
    _phases: dict[int, tuple[int, list[Phase]]] | None = None

    def policy(self, environment_id: int) -> ApprovalPolicy | None:
        if self._policies is None:
            self._policies = {
                p.environment_id: p
                for p in ApprovalPolicy.objects.select_related(
                    "requires_completed_in", "environment"
                )
            }
        return self._policies.get(environment_id)

    def windows(self, environment_id: int | None) -> list[WindowSpec]:
        """The active windows of an environment and the global ones, by id (as `window_specs`)."""
        if self._windows is None:
            self._windows = [
                window_spec(w) for w in FreezeWindow.objects.filter(is_active=True).order_by("id")
            ]
        if environment_id not in self._by_env:
            self._by_env[environment_id] = [
                w for w in self._windows if w.environment_id in (None, environment_id)
            ]
        return self._by_env[environment_id]

    def phases(self, rollout: Rollout) -> list[Phase]:
        """The locked rollout's phases in order, with their segments (as `_phases`).

        The batch's rollouts' phases are read together with each rollout's version in one
        statement (one consistent snapshot). Every write of a phase bumps its rollout's version
        in the same transaction (plan edits, scheduling, applying a phase, all under the row
        lock), so when the locked row still has the version read with them, they are the
        phases as they are now. Otherwise (changed meanwhile, not in the batch, or already
        used by a step of this batch) they are read again.
        """
        if self._phases is None:
            self._phases = {}
            if self.rollout_ids:
                batch = (
                    Phase.objects.filter(rollout_id__in=list(self.rollout_ids))
                    .select_related("segment")
                    .annotate(rollout_version=F("rollout__version"))
                    .order_by("rollout_id", "order")
                )
                for phase in batch:
                    entry = self._phases.setdefault(phase.rollout_id, (phase.rollout_version, []))
                    entry[1].append(phase)
        version, phases = self._phases.pop(rollout.pk, (None, []))
        if version != rollout.version:
            return _phases(rollout)
        for known in phases:
            known.rollout = rollout  # as `rollout.phases` would
        return phases
