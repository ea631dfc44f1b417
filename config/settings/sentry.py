"""Sentry: on when SENTRY_DSN is set."""

from __future__ import annotations

from config.sentry import init_sentry
from config.settings.env import env, env_optional

SENTRY_DSN = env_optional("SENTRY_DSN")
SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT", str, "development")
SENTRY_RELEASE = env_optional("SENTRY_RELEASE")
SENTRY_TRACES_SAMPLE_RATE = env("SENTRY_TRACES_SAMPLE_RATE", float, 0.0)

init_sentry(
    dsn=SENTRY_DSN,
    environment=SENTRY_ENVIRONMENT,
    release=SENTRY_RELEASE,
    traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
)
