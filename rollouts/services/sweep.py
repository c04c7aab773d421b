"""What a scheduler batch reads once instead of once per step: the approval policies and the
active freeze/allow windows of every environment (two queries, on first use).

A batch is short (`SWEEP_CACHE_STEPS` steps), so a policy or window changed meanwhile is seen
by the next batch, as a change committed just after a step's read always was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rollouts.models import ApprovalPolicy, FreezeWindow
from rollouts.services.windows import window_spec
from rollouts.windows import WindowSpec

# Steps that share one cache before it is read again (a sweep message holds about as many).
SWEEP_CACHE_STEPS = 20


@dataclass
class SweepCache:
    """Policies and window specs by environment id, each loaded in one query when first asked."""

    _policies: dict[int, ApprovalPolicy] | None = None
    _windows: list[WindowSpec] | None = None
    _by_env: dict[int | None, list[WindowSpec]] = field(default_factory=dict)

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
