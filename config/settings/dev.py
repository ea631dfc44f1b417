"""Development: DEBUG on, embedded PostgreSQL/Redis when no URLs are given."""

from __future__ import annotations

import os

from config.settings.base import *  # noqa: F403
from config.settings.env import env_optional
from config.settings.tenants import database_from_url

DEBUG = env("DEBUG", bool, True)  # noqa: F405
SECRET_KEY = SECRET_KEY or "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: F405
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "[::1]", ".localhost"]  # noqa: F405

if not env_optional("DATABASE_URL"):
    from config import devservices

    os.environ["DATABASE_URL"] = devservices.postgres_url()
if not env_optional("REDIS_URL"):
    from config import devservices

    os.environ["REDIS_URL"] = devservices.redis_url()

DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
REDIS_URL = os.environ["REDIS_URL"]
CACHES = caches_for(REDIS_URL)  # noqa: F405
globals().update(celery_settings(REDIS_URL))  # noqa: F405

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
