"""Error reporting with sentry-sdk: Django, Celery and Redis integrations, nothing secret sent.

``before_send`` (and ``before_breadcrumb``) remove what must never leave the
process: ``Authorization`` and ``Cookie`` headers, cookies, request bodies
(they hold documents), query strings, and anything that looks like an Outpost
API key, wherever it appears. Local variables are not captured at all, since
they routinely hold documents.
"""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.redis import RedisIntegration

FILTERED = "[Filtered]"
_KEY_RE = re.compile(r"(opk_[a-z0-9]{12})_[A-Za-z0-9]{40}")
_SECRET_HEADERS = {"authorization", "cookie", "x-api-key", "proxy-authorization", "stripe-signature"}
_SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "sessionid", "csrf")


def _scrub_text(value: str) -> str:
    return _KEY_RE.sub(r"\1_" + FILTERED, value)


def _scrub(value: Any, depth: int = 0) -> Any:
    """Recursively remove key secrets from strings and values under secret-looking names."""
    if depth > 20:
        return FILTERED
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {
            key: FILTERED
            if isinstance(key, str) and any(word in key.lower() for word in _SECRET_WORDS)
            else _scrub(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item, depth + 1) for item in value]
    return value


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers") or {}
        request["headers"] = {
            name: FILTERED if name.lower() in _SECRET_HEADERS else value for name, value in headers.items()
        }
        for field in ("cookies", "data", "query_string", "env"):
            if field in request:
                request[field] = FILTERED
    return _scrub(event)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    return _scrub(crumb)


def init_sentry(*, dsn: str | None, environment: str, release: str | None, traces_sample_rate: float = 0.0) -> bool:
    """Initialise the SDK when a DSN is configured; returns whether it did."""
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[
            DjangoIntegration(),
            CeleryIntegration(monitor_beat_tasks=False),
            RedisIntegration(),
            LoggingIntegration(event_level=None),
        ],
        # No personal data: the SDK's default (an explicit send_default_pii is deprecated in favour of
        # data_collection, whose defaults collect more; before_send scrubs what reaches it either way).
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=traces_sample_rate,
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
    )
    return True


def tag_organisation(*, slug: str, plan: str) -> None:
    """Tag the current scope (request or task) with the organisation and its plan."""
    scope = sentry_sdk.get_isolation_scope()
    scope.set_tag("organisation", slug)
    scope.set_tag("plan", plan)
