"""Test settings: real PostgreSQL and Redis (embedded ones when no URLs are given).

The suite flushes the Redis database it is given between tests, so point
``REDIS_URL`` at a database number you do not use for anything else.
"""

from __future__ import annotations

import os

from config.settings.base import *  # noqa: F403
from config.settings.env import env, env_optional
from config.settings.tenants import database_from_url

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"

if not env_optional("DATABASE_URL"):
    from config import devservices

    os.environ["DATABASE_URL"] = devservices.postgres_url()
if not env_optional("REDIS_URL"):
    from config import devservices

    os.environ["REDIS_URL"] = devservices.redis_url(db=1)

DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
# Persistent connections would outlive the test transaction in threads.
DATABASES["default"]["CONN_MAX_AGE"] = 0
# One test database per run, so two runs on one server never collide.
DATABASES["default"]["TEST"] = {"NAME": env("OUTPOST_TEST_DB_NAME", str, f"test_outpost_{os.getpid()}")}
REDIS_URL = os.environ["REDIS_URL"]
CACHES = caches_for(REDIS_URL)  # noqa: F405
globals().update(celery_settings(REDIS_URL))  # noqa: F405

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405

# Tasks run in-process unless a test starts a real worker (tests/billing/test_worker.py).
CELERY_TASK_ALWAYS_EAGER = env("CELERY_TASK_ALWAYS_EAGER", bool, True)
CELERY_TASK_EAGER_PROPAGATES = True

# Rate limiting is off for the suite; tests about limiting switch it on with the ``settings`` fixture.
RATELIMIT_ENABLED = False
