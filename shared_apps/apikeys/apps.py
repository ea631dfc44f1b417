from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    name = "shared_apps.apikeys"
    label = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from shared_apps.apikeys import schema  # noqa: F401 - registers the OpenAPI security scheme
        from shared_apps.apikeys.selectors import api_key_cache_keys_for_organisation
        from tenants.selectors import ORGANISATION_CACHE_KEY_PROVIDERS

        # A key's cache entry carries its organisation's snapshot: evict it with the organisation.
        if api_key_cache_keys_for_organisation not in ORGANISATION_CACHE_KEY_PROVIDERS:
            ORGANISATION_CACHE_KEY_PROVIDERS.append(api_key_cache_keys_for_organisation)
