from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "shared_apps.apikeys"
    label = "apikeys"
    verbose_name = "API keys"
