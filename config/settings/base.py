"""Settings shared by every environment.

Topic modules are star-imported at the end; environment modules (``dev``,
``test``, ``prod``) import this one and adjust. Nothing here has a production
secret as a default.
"""

from __future__ import annotations

from pathlib import Path

from config.settings.env import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env("DEBUG", bool, False)
SECRET_KEY = env("SECRET_KEY", str, "")
ALLOWED_HOSTS = env("ALLOWED_HOSTS", list, ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS", list, [])

# Public base domain: each organisation gets ``<slug>.<OUTPOST_BASE_DOMAIN>``.
OUTPOST_BASE_DOMAIN = env("OUTPOST_BASE_DOMAIN", str, "outpost.localhost")
# The URL the portal is reached at, used in e-mails and in the run command's hints.
OUTPOST_PUBLIC_URL = env("OUTPOST_PUBLIC_URL", str, "http://127.0.0.1:8000")

ROOT_URLCONF = "config.urls"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Bearer token for /metrics; empty = metrics off outside DEBUG.
METRICS_TOKEN = env("METRICS_TOKEN", str, "")
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

MIDDLEWARE = [
    "shared_apps.core.middleware.RequestContextMiddleware",
    "billing.ratelimit.RateLimitHeadersMiddleware",
    "shared_apps.core.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "shared_apps.core.security.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.PublicSchemaMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# API request bodies: a push batch of 500 documents of a few KB fits well inside.
DATA_UPLOAD_MAX_MEMORY_SIZE = env("OUTPOST_MAX_REQUEST_BYTES", int, 10 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["shared_apps.apikeys.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["shared_apps.apikeys.permissions.HasRequiredScope"],
    "DEFAULT_THROTTLE_CLASSES": ["billing.ratelimit.OrganisationRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "shared_apps.core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Outpost API",
    "DESCRIPTION": "Sync backend for offline-first apps. Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

from config.settings.cache import *  # noqa: E402,F403
from config.settings.celery import *  # noqa: E402,F403
from config.settings.logging import *  # noqa: E402,F403
from config.settings.portal import *  # noqa: E402,F403
from config.settings.ratelimit import *  # noqa: E402,F403
from config.settings.sentry import *  # noqa: E402,F403
from config.settings.stripe import *  # noqa: E402,F403
from config.settings.tenants import *  # noqa: E402,F403
