from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "rollouts"

    def ready(self) -> None:
        from core.dashboard import register_panel, register_section
        from rollouts.views.checks import rollout_checks_section, rollout_observed_section
        from rollouts.views.dashboard import (
            active_rollouts_panel,
            approvals_panel,
            upcoming_changes_panel,
        )

        register_panel(approvals_panel)
        register_panel(active_rollouts_panel)
        register_panel(upcoming_changes_panel)
        register_section("rollout_detail", rollout_checks_section)
        register_section("rollout_detail", rollout_observed_section)
