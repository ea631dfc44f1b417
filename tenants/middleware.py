"""Every request starts (and ends) on the public schema.

API requests switch to the organisation's schema only inside the API key
authentication class, after the key is verified; portal pages switch
explicitly through :func:`tenants.context.tenant_context`. Resetting here means
a worker thread can never carry one request's tenant into the next request.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, HttpResponse


class PublicSchemaMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        try:
            return self.get_response(request)
        finally:
            connection.set_schema_to_public()
