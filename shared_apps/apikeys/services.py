"""Creating and revoking API keys (audited, cache invalidated after commit)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from shared_apps.apikeys import keys
from shared_apps.apikeys.models import DEFAULT_SCOPES, SCOPES, ApiKey
from shared_apps.apikeys.selectors import api_key_cache_key
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.cache import cache_delete_on_commit
from shared_apps.core.errors import Conflict, InvalidInput
from tenants.models import Organisation, OrganisationStatus

MAX_NAME_LENGTH = 100


def _validate_scopes(scopes: Sequence[str]) -> list[str]:
    cleaned = sorted({scope.strip() for scope in scopes if scope.strip()})
    if not cleaned:
        raise InvalidInput("Give at least one scope.", code="invalid_scopes", details={"allowed": list(SCOPES)})
    unknown = [scope for scope in cleaned if scope not in SCOPES]
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s): {', '.join(unknown)}.",
            code="invalid_scopes",
            details={"unknown": unknown, "allowed": list(SCOPES)},
        )
    return cleaned


@transaction.atomic
def api_key_create(
    *,
    actor: Actor,
    organisation: Organisation,
    name: str,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the full key string, which is never stored or shown again."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"A key name is 1 to {MAX_NAME_LENGTH} characters.", code="invalid_name")
    cleaned_scopes = _validate_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", code="invalid_expiry")
    if organisation.status != OrganisationStatus.ACTIVE:
        raise Conflict(
            f"Keys can only be created for an active organisation (this one is {organisation.status}).",
            code="organisation_not_active",
        )
    full_key, prefix, secret_hash = keys.generate()
    api_key = ApiKey.objects.create(
        organisation=organisation,
        name=name,
        prefix=prefix,
        secret_hash=secret_hash,
        scopes=cleaned_scopes,
        created_by=actor.user,
        created_by_label=actor.label,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="api_key.created",
        organisation=organisation,
        target_type="api_key",
        target_id=api_key.display_prefix,
        details={"name": name, "scopes": cleaned_scopes, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    # A guess at this prefix may have been cached as unknown.
    cache_delete_on_commit(api_key_cache_key(prefix))
    return api_key, full_key


@transaction.atomic
def api_key_revoke(*, actor: Actor, api_key: ApiKey, reason: str = "") -> ApiKey:
    """Revoke a key; the next request with it is refused (the cached entry is evicted on commit)."""
    api_key = ApiKey.objects.select_for_update().select_related("organisation").get(pk=api_key.pk)
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    audit_record(
        actor=actor,
        action="api_key.revoked",
        organisation=api_key.organisation,
        target_type="api_key",
        target_id=api_key.display_prefix,
        details={"name": api_key.name, **({"reason": reason} if reason else {})},
    )
    cache_delete_on_commit(api_key_cache_key(api_key.prefix))
    return api_key


def api_key_touch(*, api_key_id: int) -> None:
    """Record use of a key. Called at most once a minute per key (see authentication)."""
    ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())
