from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Rollcall core"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from core.dashboard import register_panel
        from core.roles import sync_roles_after_migrate
        from core.views import failures_panel

        # Later apps add models; keep the role groups' permissions in step with them.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="core.sync_roles")
        register_panel(failures_panel)
