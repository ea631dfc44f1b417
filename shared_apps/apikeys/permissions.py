"""Scope checks: a view declares ``required_scope`` (or ``required_scopes`` per method); this class enforces it."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from shared_apps.apikeys.authentication import ApiKeyPrincipal, required_scope
from shared_apps.core.errors import AuthenticationRequired, InsufficientScope


class HasRequiredScope(BasePermission):
    """Authenticated by API key, and holding the view's ``required_scope`` (if it names one)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.auth
        if not isinstance(principal, ApiKeyPrincipal):
            raise AuthenticationRequired()
        required = required_scope(view, request.method or "")
        if required and not principal.has_scope(required):
            raise InsufficientScope(details={"required_scope": required, "key_scopes": sorted(principal.scopes)})
        return True
