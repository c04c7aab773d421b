from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"

    def ready(self) -> None:
        from core.dashboard import register_panel
        from rollouts.views.dashboard import (
            active_rollouts_panel,
            approvals_panel,
            upcoming_changes_panel,
        )

        register_panel(approvals_panel)
        register_panel(active_rollouts_panel)
        register_panel(upcoming_changes_panel)

        from core.failures import register_source
        from rollouts.failures import AdvanceFailures

        register_source(AdvanceFailures())

        from flags.services import register_state_check
        from rollouts.services.direct_writes import direct_state_change_refusal

        # Direct flag-state writes follow the environments' approval policies too.
        register_state_check(direct_state_change_refusal)
