"""Organisation lifecycle: create, provision, suspend, resume, delete.

Each service is one transaction that includes its audit row; PostgreSQL DDL is
transactional, so a failed provisioning leaves neither a row nor a schema.
"""

from __future__ import annotations

import re
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import Conflict, InvalidInput, NotFound
from tenants import provisioning
from tenants.models import Domain, Organisation, OrganisationStatus
from tenants.selectors import organisation_cache_evict

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,48}[a-z0-9]$")
RESERVED_SLUGS = frozenset(
    {"public", "www", "api", "admin", "app", "static", "media", "portal", "status", "docs", "mail", "outpost"}
)
MAX_NAME_LENGTH = 200


def schema_name_for(slug: str) -> str:
    return "org_" + slug.replace("-", "_")


def slug_validate(slug: str) -> str:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug) or "--" in slug:
        raise InvalidInput(
            "A slug is 3-50 lowercase letters, digits and single hyphens, starting with a letter.",
            code="invalid_slug",
            details={"slug": slug},
        )
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"The slug {slug!r} is reserved.", code="invalid_slug", details={"slug": slug})
    return slug


def slug_suggest(name: str) -> str:
    """A free slug derived from the name (with a random suffix when taken)."""
    base = re.sub(r"-+", "-", slugify(name)).strip("-")[:40] or "org"
    if not base[0].isalpha():
        base = f"org-{base}"[:40]
    if len(base) < 3:
        base = f"{base}-org"
    candidate = base
    while candidate in RESERVED_SLUGS or Organisation.all_objects.filter(slug=candidate).exists():
        candidate = f"{base}-{secrets.token_hex(3)}"
    return candidate


@transaction.atomic
def organisation_create(*, actor: Actor, name: str, slug: str | None = None) -> Organisation:
    """Insert the organisation row (status ``provisioning``) and its default domain."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"An organisation name is 1 to {MAX_NAME_LENGTH} characters.", code="invalid_name")
    slug = slug_validate(slug) if slug else slug_suggest(name)
    if Organisation.all_objects.filter(slug=slug).exists():
        raise Conflict(f"The slug {slug!r} is taken.", code="slug_taken", details={"slug": slug})
    try:
        with transaction.atomic():
            organisation = Organisation.all_objects.create(
                name=name, slug=slug, schema_name=schema_name_for(slug), status=OrganisationStatus.PROVISIONING
            )
    except IntegrityError as exc:
        raise Conflict(f"The slug {slug!r} is taken.", code="slug_taken", details={"slug": slug}) from exc
    Domain.objects.create(domain=f"{slug}.{settings.OUTPOST_BASE_DOMAIN}", tenant=organisation, is_primary=True)
    audit_record(
        actor=actor,
        action="organisation.created",
        organisation=organisation,
        target_type="organisation",
        target_id=slug,
        details={"name": name},
    )
    return organisation


@transaction.atomic
def organisation_provision(*, organisation_id: int) -> Organisation:
    """Create the organisation's schema with every tenant table and mark it active.

    Safe to run twice (a retried background task): an active organisation is
    returned unchanged.
    """
    organisation = Organisation.all_objects.select_for_update().filter(pk=organisation_id).first()
    if organisation is None:
        raise NotFound("No such organisation.", code="organisation_not_found")
    if organisation.status != OrganisationStatus.PROVISIONING:
        return organisation
    provisioning.create_tenant_schema(organisation.schema_name)
    organisation.status = OrganisationStatus.ACTIVE
    organisation.provisioned_at = timezone.now()
    organisation.save(update_fields=["status", "provisioned_at", "updated_at"])
    audit_record(
        actor=Actor.system(),
        action="organisation.provisioned",
        organisation=organisation,
        target_type="organisation",
        target_id=organisation.slug,
        details={"schema": organisation.schema_name},
    )
    organisation_cache_evict(organisation.pk)
    return organisation


@transaction.atomic
def organisation_create_and_provision(*, actor: Actor, name: str, slug: str | None = None) -> Organisation:
    """Create and provision in one transaction (the CLI and tests; the portal provisions in the background)."""
    organisation = organisation_create(actor=actor, name=name, slug=slug)
    return organisation_provision(organisation_id=organisation.pk)


def _set_status(organisation: Organisation, status: str, *, reason: str = "", **timestamps: object) -> Organisation:
    organisation.status = status
    organisation.status_reason = reason
    for field, value in timestamps.items():
        setattr(organisation, field, value)
    organisation.save(update_fields=["status", "status_reason", "updated_at", *timestamps])
    organisation_cache_evict(organisation.pk)
    return organisation


def _locked(organisation: Organisation) -> Organisation:
    return Organisation.all_objects.select_for_update().get(pk=organisation.pk)


@transaction.atomic
def organisation_suspend(*, actor: Actor, organisation: Organisation, reason: str) -> Organisation:
    """Suspend: every API request of the organisation gets 403 ``tenant_suspended`` from now on."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give a reason for the suspension.", code="reason_required")
    organisation = _locked(organisation)
    if organisation.status != OrganisationStatus.ACTIVE:
        raise Conflict(
            f"Only an active organisation can be suspended (it is {organisation.status}).", code="bad_status"
        )
    _set_status(organisation, OrganisationStatus.SUSPENDED, reason=reason, suspended_at=timezone.now())
    audit_record(
        actor=actor,
        action="organisation.suspended",
        organisation=organisation,
        target_type="organisation",
        target_id=organisation.slug,
        details={"reason": reason},
    )
    return organisation


@transaction.atomic
def organisation_resume(*, actor: Actor, organisation: Organisation, reason: str = "") -> Organisation:
    organisation = _locked(organisation)
    if organisation.status != OrganisationStatus.SUSPENDED:
        raise Conflict(
            f"Only a suspended organisation can be resumed (it is {organisation.status}).", code="bad_status"
        )
    _set_status(organisation, OrganisationStatus.ACTIVE, suspended_at=None)
    audit_record(
        actor=actor,
        action="organisation.resumed",
        organisation=organisation,
        target_type="organisation",
        target_id=organisation.slug,
        details={"reason": reason} if reason else {},
    )
    return organisation


@transaction.atomic
def organisation_delete(*, actor: Actor, organisation: Organisation, confirm: bool) -> Organisation:
    """Drop the organisation's schema and all its data. Requires ``confirm=True``.

    The row stays (status ``deleted``) so the audit log keeps naming it; its
    keys stop working at once because authentication refuses deleted tenants.
    """
    if not confirm:
        raise InvalidInput("Deleting an organisation drops all its data; confirm explicitly.", code="confirm_required")
    organisation = _locked(organisation)
    if organisation.status == OrganisationStatus.DELETED:
        return organisation
    provisioning.drop_tenant_schema(organisation.schema_name)
    Domain.objects.filter(tenant=organisation).delete()
    _set_status(organisation, OrganisationStatus.DELETED, deleted_at=timezone.now())
    audit_record(
        actor=actor,
        action="organisation.deleted",
        organisation=organisation,
        target_type="organisation",
        target_id=organisation.slug,
        details={"schema": organisation.schema_name},
    )
    return organisation
