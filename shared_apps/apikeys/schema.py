"""Tells drf-spectacular that the API authenticates with a bearer API key."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "shared_apps.apikeys.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "opk_<prefix>_<secret>",
            "description": "An organisation API key, created in the portal or with `manage.py apikey create`.",
        }
