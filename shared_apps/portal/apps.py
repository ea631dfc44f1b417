from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "shared_apps.portal"
    label = "portal"
    verbose_name = "Organisation portal"
