"""Plan changes: editing a plan's limits and moving an organisation to another plan."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing.models import Plan
from billing.selectors import plan_cache_key, plan_limits_forget
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.cache import cache_delete_on_commit
from shared_apps.core.errors import InvalidInput
from tenants.models import Organisation
from tenants.selectors import organisation_cache_evict

PLAN_LIMIT_FIELDS = (
    "requests_per_minute",
    "burst",
    "max_documents",
    "max_devices",
    "max_document_bytes",
    "max_batch_mutations",
    "tombstone_retention_days",
    "queue_tier",
    "max_concurrent_tasks",
)


def plan_cache_evict(slug: str) -> None:
    plan_limits_forget()
    cache_delete_on_commit(plan_cache_key(slug))


@transaction.atomic
def plan_update(*, actor: Actor, plan: Plan, **changes: Any) -> Plan:
    """Change a plan's limits; every organisation on it sees the new limits on its next request."""
    unknown = set(changes) - set(PLAN_LIMIT_FIELDS) - {"name", "stripe_price_id", "is_public"}
    if unknown:
        raise InvalidInput(f"Unknown plan fields: {', '.join(sorted(unknown))}.", code="invalid_plan_field")
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    before = {field: getattr(plan, field) for field in changes}
    for field, value in changes.items():
        setattr(plan, field, value)
    plan.full_clean()
    plan.save()
    audit_record(
        actor=actor,
        action="plan.updated",
        target_type="plan",
        target_id=plan.slug,
        details={"before": before, "after": changes},
    )
    plan_cache_evict(plan.slug)
    return plan


@transaction.atomic
def organisation_change_plan(
    *, actor: Actor, organisation: Organisation, plan_slug: str, reason: str = ""
) -> Organisation:
    """Move an organisation to another plan (staff, Stripe webhooks, downgrades)."""
    plan = Plan.objects.filter(slug=plan_slug).first()
    if plan is None:
        raise InvalidInput(f"No plan {plan_slug!r}.", code="unknown_plan")
    organisation = Organisation.all_objects.select_for_update().get(pk=organisation.pk)
    previous = organisation.plan_id
    if previous == plan.slug:
        return organisation
    organisation.plan = plan
    organisation.save(update_fields=["plan", "updated_at"])
    audit_record(
        actor=actor,
        action="organisation.plan_changed",
        organisation=organisation,
        target_type="organisation",
        target_id=organisation.slug,
        details={"from": previous, "to": plan.slug, **({"reason": reason} if reason else {})},
    )
    organisation_cache_evict(organisation.pk)
    return organisation
