"""The one place an API request becomes an organisation's request.

``Authorization: Bearer opk_<prefix>_<secret>`` → one Redis round trip
(:mod:`shared_apps.apikeys.admission`: the key's cache entry, the rate limit
and the usage counter) → constant-time secret check → organisation snapshot →
the connection switched to that organisation's schema. On a cache miss the key
is read from the database and admitted the slower way. The organisation comes
from the key alone: no host, header or path can point a key at another schema.
Unknown, malformed, revoked and expired keys all get the same 401.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field

from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from billing import ratelimit
from billing.selectors import plan_limits_refresh
from billing.usage import usage_incr
from config.sentry import tag_organisation
from shared_apps.apikeys import keys
from shared_apps.apikeys.admission import ADMITTED, MISS, NO_PLAN, admission_call, enforce
from shared_apps.apikeys.selectors import ApiKeyRecord, api_key_entry_decode, api_key_load
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
        django_request = request._request
        try:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != self.keyword.lower() or not token.strip():
                raise AuthenticationError()
            view = (getattr(request, "parser_context", None) or {}).get("view")
            method = django_request.method or ""
            principal = authenticate_request(
                django_request, token.strip(), usage_counter(view, method), required_scope(view, method)
            )
        except AuthenticationError:
            # 429 instead once this address has too many recent failures.
            ratelimit.auth_failure_record(django_request)
            raise
        connection.set_tenant(principal.organisation.tenant)
        return principal, principal

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="outpost"'


def required_scope(view: object, method: str) -> str | None:
    """The scope ``view`` requires for ``method``: ``required_scopes`` per method, else ``required_scope``."""
    per_method: dict[str, str] = getattr(view, "required_scopes", {})
    return per_method.get(method) or getattr(view, "required_scope", None)


def usage_counter(view: object, method: str) -> str | None:
    """The daily usage counter a request adds one to, from its view's ``usage_counters`` by method."""
    counters: dict[str, str] | None = getattr(view, "usage_counters", None)
    return counters.get(method) if counters else None


def authenticate_request(
    request: HttpRequest, raw_key: str, counter: str | None = None, scope: str | None = None
) -> ApiKeyPrincipal:
    """Verify a key, admit the request (rate limit, usage counter) and return the principal.

    ``counter`` (``pulls``, ``pushes``) is added to when the request is admitted and the key holds
    ``scope``, the one the view requires.

    Raises one indistinct 401 for anything wrong with the key, 403/503 for an
    organisation that is suspended or not ready, 429 when a limit refuses.
    """
    parsed = keys.parse(raw_key)
    if parsed is None:
        keys.secret_matches(raw_key, None)  # the same work as for an unknown key
        raise AuthenticationError()
    digest = keys.digest(parsed.secret)
    admission = admission_call(prefix=parsed.prefix, digest=digest, request=request, counter=counter, scope=scope)
    if admission is None or admission.code == MISS:
        found = api_key_load(prefix=parsed.prefix)
    else:
        found = api_key_entry_decode(admission.entry or b"")
    principal = _principal(found, digest)
    request.outpost_principal = principal  # type: ignore[attr-defined] - for middleware that runs after the view
    if admission is not None and admission.code == ADMITTED:
        enforce(request, admission)
    else:
        # The slower way: a cache miss, a cold plan entry, Redis unreachable, or the script and
        # Python disagreeing (e.g. on an expiry at the edge of the clock).
        if admission is not None and admission.code == NO_PLAN:
            plan_limits_refresh(slug=principal.organisation.plan_slug)  # so the next request is one round trip
        ratelimit.admit(request, principal)
        if counter and (not scope or principal.has_scope(scope)):
            usage_incr(organisation_id=principal.organisation.id, **{counter: 1})
    return principal


# id of a decoded (key record, organisation snapshot) pair -> (that pair, its principal). Both are immutable
# and the decoded pairs are memoised themselves, so one principal serves every request presenting the same
# cache entry; the pair is kept in the value, so its id cannot be reused while the entry exists.
_principals: dict[int, tuple[tuple[ApiKeyRecord, OrganisationSnapshot], ApiKeyPrincipal]] = {}


def _principal(found: tuple[ApiKeyRecord, OrganisationSnapshot] | None, digest: str) -> ApiKeyPrincipal:
    record = found[0] if found else None
    secret_ok = hmac.compare_digest(digest, record.secret_hash if record else keys.DUMMY_DIGEST)
    if found is None or record is None or not secret_ok or record.revoked or record.is_expired(timezone.now()):
        raise AuthenticationError()
    organisation = found[1]
    if organisation.status == OrganisationStatus.DELETED:
        raise AuthenticationError()
    if organisation.status == OrganisationStatus.SUSPENDED:
        raise TenantSuspended()
    if organisation.status != OrganisationStatus.ACTIVE:
        raise TenantNotReady()
    cached = _principals.get(id(found))
    if cached is not None and cached[0] is found:
        principal = cached[1]
    else:
        if len(_principals) >= 4096:
            _principals.clear()
        principal = ApiKeyPrincipal(key=record, organisation=organisation, scopes=frozenset(record.scopes))
        _principals[id(found)] = (found, principal)
    context_update(organisation=organisation.slug, key_prefix=principal.key_prefix)
    tag_organisation(slug=organisation.slug, plan=organisation.plan_slug)
    _touch(record.id)
    return principal


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
