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
