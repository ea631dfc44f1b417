from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "shared_apps.core"
    label = "core"
    verbose_name = "Outpost core"

    def ready(self) -> None:
        from shared_apps.core.metrics import connect_celery_signals

        connect_celery_signals()
