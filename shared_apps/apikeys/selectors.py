"""API key lookups for authentication, cached in the platform cache.

One cache entry per key holds everything a request needs — the key record
(the digest, never the secret) and its organisation's snapshot, stored as JSON —
so the admission script (:mod:`shared_apps.apikeys.admission`) reads it inside
Redis in the same call that spends the request's rate-limit token. The entry is evicted when the key
is revoked and, through :data:`tenants.selectors.ORGANISATION_CACHE_KEY_PROVIDERS`,
whenever the organisation changes (status, plan).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db.models import QuerySet

from shared_apps.apikeys.models import ApiKey
from shared_apps.core.cache import cache_set
from tenants.models import Organisation
from tenants.selectors import OrganisationSnapshot, snapshot_of

KEY_CACHE_SECONDS = 300
UNKNOWN_KEY_CACHE_SECONDS = 30


@dataclass(frozen=True)
class ApiKeyRecord:
    """The cached facts needed to authenticate a key (the digest, never the secret)."""

    id: int
    prefix: str
    name: str
    organisation_id: int
    secret_hash: str
    scopes: tuple[str, ...]
    expires_at: float | None
    revoked: bool

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now.timestamp()


def api_key_cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def _record_of(api_key: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=api_key.pk,
        prefix=api_key.prefix,
        name=api_key.name,
        organisation_id=api_key.organisation_id,
        secret_hash=api_key.secret_hash,
        scopes=tuple(api_key.scopes),
        expires_at=api_key.expires_at.timestamp() if api_key.expires_at else None,
        revoked=api_key.revoked_at is not None,
    )


KeyAndOrganisation = tuple[ApiKeyRecord, OrganisationSnapshot]


def api_key_load(*, prefix: str) -> KeyAndOrganisation | None:
    """Read a key and its organisation from the database and (re)fill its cache entry."""
    key = api_key_cache_key(prefix)
    api_key = ApiKey.objects.filter(prefix=prefix).select_related("organisation").first()
    if api_key is None:
        cache_set(key, {}, UNKNOWN_KEY_CACHE_SECONDS)
        return None
    record = _record_of(api_key)
    organisation = snapshot_of(api_key.organisation)
    cache_set(key, {"key": asdict(record), "organisation": asdict(organisation)}, KEY_CACHE_SECONDS)
    return record, organisation


def _from_entry(value: dict[str, Any]) -> KeyAndOrganisation | None:
    if not value:
        return None
    record = ApiKeyRecord(**{**value["key"], "scopes": tuple(value["key"]["scopes"])})
    return record, OrganisationSnapshot(**value["organisation"])


# Raw cache entry (bytes, as the admission script returns it) -> decoded key and organisation. The bytes
# are the cache's current truth on every request; only turning them into objects is remembered, so a
# revoked key or a suspended organisation (a new entry) is seen on the very next request.
_decoded: dict[bytes, KeyAndOrganisation | None] = {}
_DECODED_MAX = 4096


def api_key_entry_decode(raw: bytes) -> KeyAndOrganisation | None:
    """A raw platform-cache entry (JSON) as the key and its organisation; ``None`` for an unknown key."""
    try:
        return _decoded[raw]
    except KeyError:
        pass
    try:
        value = orjson.loads(raw)
        found = _from_entry(value) if isinstance(value, dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError):
        found = None
    if len(_decoded) >= _DECODED_MAX:
        _decoded.clear()
    _decoded[raw] = found
    return found


def api_key_cache_keys_for_organisation(organisation_id: int) -> list[str]:
    """Cache entries that embed this organisation's snapshot (one per key)."""
    prefixes = ApiKey.objects.filter(organisation_id=organisation_id).values_list("prefix", flat=True)
    return [api_key_cache_key(prefix) for prefix in prefixes]


def api_key_list(*, organisation: Organisation, include_revoked: bool = True) -> QuerySet[ApiKey]:
    queryset = ApiKey.objects.filter(organisation=organisation).select_related("created_by")
    if not include_revoked:
        queryset = queryset.filter(revoked_at__isnull=True)
    return queryset.order_by("-created_at")


def api_key_get(*, prefix: str) -> ApiKey | None:
    return ApiKey.objects.filter(prefix=prefix).select_related("organisation").first()
