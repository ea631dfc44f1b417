"""Health endpoints and JSON 404/500 handlers for the API."""

from __future__ import annotations

import logging

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django_redis import get_redis_connection

from shared_apps.core.errors import json_error

logger = logging.getLogger("outpost.health")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process is up and answering. Touches no dependency on purpose."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: PostgreSQL and Redis both answer. 503 names what is down."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        checks["database"] = "unreachable"
    try:
        get_redis_connection("default").ping()
        checks["redis"] = "ok"
    except Exception as exc:
        logger.warning("readiness: redis unreachable: %s", exc)
        checks["redis"] = "unreachable"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_error(404, "not_found", "No such endpoint.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Exception("not found"))


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return json_error(500, "internal_error", "An unexpected error occurred.")
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    from django.core.exceptions import RequestDataTooBig

    if isinstance(exception, RequestDataTooBig):
        return json_error(413, "payload_too_large", "The request body is too large.")
    if _is_api(request):
        return json_error(400, "bad_request", "The request is invalid.")
    from django.views.defaults import bad_request

    return bad_request(request, exception or Exception("bad request"))
