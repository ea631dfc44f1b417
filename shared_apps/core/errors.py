"""One error hierarchy and one API error shape.

Services raise :class:`OutpostError` subclasses carrying a stable ``code``;
:func:`api_exception_handler` turns them, DRF's own exceptions and anything
unexpected into ``{"error": {"code", "message", "details"}}``. Views never
build error responses by hand.
"""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger("outpost.errors")


class OutpostError(Exception):
    """Base of every error a service raises on purpose."""

    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, details: Any = None, code: str | None = None) -> None:
        self.message = message or self.message
        self.details = details if details is not None else {}
        if code:
            self.code = code
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInput(OutpostError):
    status_code = 400
    code = "invalid_input"
    message = "The request is invalid."


class NotFound(OutpostError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class AuthenticationError(OutpostError):
    status_code = 401
    code = "invalid_api_key"
    message = "The API key is invalid, expired or revoked."

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="outpost"'}


class AuthenticationRequired(AuthenticationError):
    code = "authentication_required"
    message = "Send an API key as 'Authorization: Bearer <key>'."


class Forbidden(OutpostError):
    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    message = "The API key lacks the scope this endpoint needs."


class TenantSuspended(Forbidden):
    code = "tenant_suspended"
    message = "This organisation is suspended."


class QuotaExceeded(Forbidden):
    """A plan limit would be exceeded; ``details`` names the limit, the usage and the plan."""

    code = "quota_exceeded"
    message = "This would exceed a limit of the organisation's plan."


class TenantNotReady(OutpostError):
    status_code = 503
    code = "tenant_not_ready"
    message = "This organisation is still being provisioned."


class Conflict(OutpostError):
    status_code = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(OutpostError):
    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large."


class RateLimited(OutpostError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_json",
    drf.NotAuthenticated: "authentication_required",
    drf.AuthenticationFailed: "invalid_api_key",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
    drf.ValidationError: "validation_error",
}


def _drf_code(exc: drf.APIException) -> str:
    for cls in type(exc).__mro__:
        if cls in _DRF_CODES:
            return _DRF_CODES[cls]
    return "bad_request"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler producing Outpost's single error shape."""
    from rest_framework.views import set_rollback  # late: rest_framework.views imports the auth classes

    set_rollback()
    response = _error_response(exc)
    response.outpost_error_code = response.data["error"]["code"]  # read by the metrics middleware
    return response


def _error_response(exc: Exception) -> Response:
    if isinstance(exc, OutpostError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code, headers=exc.headers())
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        headers: dict[str, str] = {}
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if isinstance(exc, drf.ValidationError):
            return Response(
                error_body("validation_error", "The request is invalid.", exc.detail), status=400, headers=headers
            )
        if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="outpost"'
        return Response(error_body(_drf_code(exc), str(exc.detail)), status=exc.status_code, headers=headers)
    logger.exception("Unhandled error in API view", exc_info=exc)
    # The handler turns the exception into a response, so the Django integration never sees it.
    sentry_sdk.capture_exception(exc)
    return Response(error_body("internal_error", "An unexpected error occurred."), status=500)


def json_error(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    """The same error shape for responses produced outside DRF (404/500 handlers, middleware)."""
    return JsonResponse(error_body(code, message, details), status=status)
