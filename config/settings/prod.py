"""Production: everything from the environment, no insecure fallbacks."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.env import env
from config.settings.security import *  # noqa: F403
from config.settings.tenants import database_from_url

_INSECURE_SECRET_MARKERS = ("insecure", "change-me", "changeme", "not-for-production", "dev-only")

if DEBUG:  # noqa: F405
    raise ImproperlyConfigured("DEBUG must be off in production (unset DEBUG or set DEBUG=false).")
SECRET_KEY = env("SECRET_KEY", str)
if len(SECRET_KEY) < 50 or any(marker in SECRET_KEY for marker in _INSECURE_SECRET_MARKERS):
    raise ImproperlyConfigured("SECRET_KEY must be a random value of at least 50 characters in production.")

DATABASES = {"default": database_from_url(env("DATABASE_URL", str))}
REDIS_URL = env("REDIS_URL", str)
CACHES = caches_for(REDIS_URL)  # noqa: F405
globals().update(celery_settings(REDIS_URL))  # noqa: F405
ALLOWED_HOSTS = env("ALLOWED_HOSTS", list)

LOG_FORMAT = env("LOG_FORMAT", str, "json")
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_FORMAT == "json" else "text"  # noqa: F405

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env("EMAIL_HOST", str, "localhost")
EMAIL_PORT = env("EMAIL_PORT", int, 587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", str, "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", str, "")
EMAIL_USE_TLS = env("EMAIL_USE_TLS", bool, True)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", str, "Outpost <no-reply@outpost.localhost>")
