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

        from celery.signals import task_postrun, task_prerun

        from core.metrics import register_collector
        from rollouts import metrics

        register_collector(metrics.collect)
        task_prerun.connect(metrics.sweep_started, dispatch_uid="rollouts.metrics.prerun")
        task_postrun.connect(metrics.sweep_finished, dispatch_uid="rollouts.metrics.postrun")

        from core.failures import register_source
        from rollouts.failures import AdvanceFailures

        register_source(AdvanceFailures())

        from flags.services import register_state_check
        from rollouts.services.direct_writes import direct_state_change_refusal

        # Direct flag-state writes follow the environments' approval policies too.
        register_state_check(direct_state_change_refusal)
