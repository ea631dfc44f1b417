from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "shared_apps.core"
    label = "core"
    verbose_name = "Outpost core"
