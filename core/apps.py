from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Rollcall core"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_migrate

        from core.dashboard import register_panel
        from core.middleware import remember_time_zone_at_login
        from core.roles import sync_roles_after_migrate
        from core.views import failures_panel

        # Later apps add models; keep the role groups' permissions in step with them.
        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="core.sync_roles")
        register_panel(failures_panel)
        # The viewer's time zone rides in the session from login on (no query per page).
        user_logged_in.connect(remember_time_zone_at_login, dispatch_uid="core.time_zone")
