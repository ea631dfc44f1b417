"""The one place an API request becomes an organisation's request.

``Authorization: Bearer opk_<prefix>_<secret>`` → key record (platform cache,
else database) → constant-time secret check → organisation snapshot → the
connection switched to that organisation's schema. The organisation comes from
the key alone: no host, header or path can point a key at another schema.
Unknown, malformed, revoked and expired keys all get the same 401.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from billing import ratelimit
from config.sentry import tag_organisation
from shared_apps.apikeys import keys
from shared_apps.apikeys.selectors import ApiKeyRecord, api_key_lookup
from shared_apps.apikeys.services import api_key_touch
from shared_apps.core.errors import AuthenticationError, TenantNotReady, TenantSuspended
from shared_apps.core.logging import context_update
from tenants.models import OrganisationStatus
from tenants.selectors import OrganisationSnapshot

# last_used_at is written at most once per key per this many seconds.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class ApiKeyPrincipal:
    """``request.user`` and ``request.auth`` for an API request."""

    key: ApiKeyRecord
    organisation: OrganisationSnapshot
    scopes: frozenset[str] = field(default_factory=frozenset)

    is_authenticated = True
    is_anonymous = False

    @property
    def key_prefix(self) -> str:
        return f"{keys.KEY_PREFIX}_{self.key.prefix}"

    def has_scope(self, scope: str) -> bool:
        # An admin key may do everything a sync key may.
        return scope in self.scopes or "admin" in self.scopes


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyPrincipal, ApiKeyPrincipal] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        try:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != self.keyword.lower() or not token.strip():
                raise AuthenticationError()
            principal = authenticate_key(token.strip())
        except AuthenticationError:
            # 429 instead once this address has too many recent failures.
            ratelimit.auth_failure_record(request._request)
            raise
        request._request.outpost_principal = principal  # for middleware that runs after the view
        # One Redis call: spend the organisation's token and check the address's failure budget
        # (a blocked address gets 429 even with a valid key, so guessing teaches it nothing).
        ratelimit.admit(request._request, principal)
        connection.set_tenant(principal.organisation.as_tenant())
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="outpost"'


def authenticate_key(raw_key: str) -> ApiKeyPrincipal:
    """Verify a full key string and return its principal, or raise one indistinct 401."""
    parsed = keys.parse(raw_key)
    found = api_key_lookup(prefix=parsed.prefix) if parsed else None
    record = found[0] if found else None
    secret_ok = keys.secret_matches(parsed.secret if parsed else raw_key, record.secret_hash if record else None)
    now = timezone.now()
    if found is None or record is None or not secret_ok or record.revoked or record.is_expired(now):
        raise AuthenticationError()
    organisation = found[1]
    if organisation.status == OrganisationStatus.DELETED:
        raise AuthenticationError()
    if organisation.status == OrganisationStatus.SUSPENDED:
        raise TenantSuspended()
    if organisation.status != OrganisationStatus.ACTIVE:
        raise TenantNotReady()
    context_update(organisation=organisation.slug, key_prefix=f"{keys.KEY_PREFIX}_{record.prefix}")
    tag_organisation(slug=organisation.slug, plan=organisation.plan_slug)
    _touch(record.id)
    return ApiKeyPrincipal(key=record, organisation=organisation, scopes=frozenset(record.scopes))


# key id -> monotonic time this process last wrote last_used_at. At most one
# write per key per process per LAST_USED_RESOLUTION_SECONDS, and no extra Redis
# round trip per request (the value is "last used", not an audit trail).
_last_touched: dict[int, float] = {}


def _touch(api_key_id: int) -> None:
    now = time.monotonic()
    if now - _last_touched.get(api_key_id, -LAST_USED_RESOLUTION_SECONDS) >= LAST_USED_RESOLUTION_SECONDS:
        if len(_last_touched) > 100_000:
            _last_touched.clear()
        _last_touched[api_key_id] = now
        api_key_touch(api_key_id=api_key_id)
