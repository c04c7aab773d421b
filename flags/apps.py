from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"

    def ready(self) -> None:
        from core.dashboard import register_section
        from flags.usage_views import flag_usage_section

        register_section("flag_detail", flag_usage_section)

        from core.metrics import register_collector
        from flags import metrics

        register_collector(metrics.collect)
