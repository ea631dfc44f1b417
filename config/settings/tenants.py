"""Apps, database and django-tenants settings (schema per organisation)."""

from __future__ import annotations

import dj_database_url

from config.settings.env import env


def database_from_url(url: str) -> dict:
    """Turn ``DATABASE_URL`` into a Django database dict on django-tenants' backend.

    A unix-socket URL (``postgresql://user@/db?host=/path``) is accepted, which
    is what the embedded server hands out.
    """
    config = dj_database_url.parse(
        url,
        engine="tenants.postgresql_backend",
        conn_max_age=env("DATABASE_CONN_MAX_AGE", int, 60),
        conn_health_checks=True,
    )
    options = config.setdefault("OPTIONS", {})
    # Server-side prepared statements for the sync hot path's own cursors (Django's ORM cursors bind
    # client-side and are never prepared): a statement run twice on a connection is planned once.
    # DATABASE_PREPARED_STATEMENTS=false behind a transaction-mode pooler that cannot carry them
    # (PgBouncer before 1.21). PostgreSQL plans a prepared statement again when the search path (the
    # organisation) differs from the last execution, so one prepared statement serves every schema.
    if env("DATABASE_PREPARED_STATEMENTS", bool, True):
        options.setdefault("prepare_threshold", 2)
    if "host" in options:
        config["HOST"] = options.pop("host")
        config["PORT"] = config.get("PORT") or 5432
    return config


SHARED_APPS = [
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "shared_apps.core",
    "tenants",
    "shared_apps.accounts",
    "shared_apps.apikeys",
    "shared_apps.audit",
    "shared_apps.portal",
    "billing",
    "sync",
]

# Installed in every organisation's schema (and nowhere else).
TENANT_APPS = [
    "tenant_apps.syncstore",
]

INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Organisation"
TENANT_DOMAIN_MODEL = "tenants.Domain"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# Only issue SET search_path when the schema actually changes.
TENANT_LIMIT_SET_CALLS = True
# Schema for newly created tenants is created by tenants.provisioning, not by save().
TENANT_CREATION_FAKES_MIGRATIONS = False
PUBLIC_SCHEMA_NAME = "public"
