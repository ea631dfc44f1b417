from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "shared_apps.apikeys"
    label = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from shared_apps.apikeys import schema  # noqa: F401 - registers the OpenAPI security scheme
