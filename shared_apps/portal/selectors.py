"""Reads the portal needs beyond the apps' own selectors: memberships, members, invitations, dashboard figures.

Tenant data is read inside :func:`tenants.context.tenant_context` and
materialised there (lists and numbers, never lazy querysets), so templates
render on the public schema.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from billing.selectors import PlanLimits, plan_limits
from billing.usage import usage_days
from shared_apps.accounts.models import ROLE_RANK, Invite, Membership, Signup, User
from shared_apps.audit.models import AuditEvent
from shared_apps.audit.selectors import audit_events_for
from sync import selectors as sync_selectors
from tenants.context import tenant_context
from tenants.models import Organisation, OrganisationStatus

logger = logging.getLogger("outpost.portal")


def memberships_for(*, user: User) -> list[Membership]:
    """The user's organisations (not deleted), by name, for the switcher and the home page."""
    return list(
        Membership.objects.filter(user=user)
        .exclude(organisation__status=OrganisationStatus.DELETED)
        .select_related("organisation")
        .order_by("organisation__name", "organisation__slug")
    )


def membership_for(*, user: User, slug: str) -> Membership | None:
    """The user's membership of the organisation ``slug``; ``None`` for non-members and deleted organisations."""
    return (
        Membership.objects.filter(user=user, organisation__slug=slug)
        .exclude(organisation__status=OrganisationStatus.DELETED)
        .select_related("organisation", "user")
        .first()
    )


def member_list(*, organisation: Organisation) -> list[Membership]:
    members = list(Membership.objects.filter(organisation=organisation).select_related("user"))
    members.sort(key=lambda m: (-ROLE_RANK[m.role], m.user.email))
    return members


def member_get(*, organisation: Organisation, membership_id: int) -> Membership | None:
    return (
        Membership.objects.filter(organisation=organisation, pk=membership_id)
        .select_related("user", "organisation")
        .first()
    )


def invite_list(*, organisation: Organisation) -> list[Invite]:
    """Invitations still open (pending or expired, neither accepted nor withdrawn), newest first."""
    return list(
        Invite.objects.filter(organisation=organisation, accepted_at__isnull=True, withdrawn_at__isnull=True)
        .select_related("invited_by")
        .order_by("-created_at", "-id")
    )


def invite_get(*, organisation: Organisation, invite_id: int) -> Invite | None:
    return Invite.objects.filter(organisation=organisation, pk=invite_id).select_related("organisation").first()


def audit_actions(*, organisation: Organisation) -> list[str]:
    return list(
        AuditEvent.objects.filter(organisation=organisation)
        .values_list("action", flat=True)
        .distinct()
        .order_by("action")
    )


def audit_page(*, organisation: Organisation, action: str = "", page: Any = 1, per_page: int = 50) -> Page:
    events: QuerySet[AuditEvent] = audit_events_for(organisation=organisation).order_by("-created_at", "-id")
    if action:
        events = events.filter(action=action)
    return Paginator(events, per_page).get_page(page)


# --- Dashboard -----------------------------------------------------------------


@dataclass(frozen=True)
class TenantCounts:
    documents: int
    collections: int
    devices: int
    open_conflicts: int


def tenant_counts(*, organisation: Organisation) -> TenantCounts:
    """Counts from the organisation's schema (documents from maintained counters, no row count)."""
    with tenant_context(organisation):
        return TenantCounts(
            documents=sync_selectors.document_count_total(),
            collections=sync_selectors.collection_list().count(),
            devices=sync_selectors.device_list().filter(revoked_at__isnull=True).count(),
            open_conflicts=sync_selectors.conflict_list(status="open").count(),
        )


@dataclass(frozen=True)
class LimitUsage:
    """How much of one plan limit is in use."""

    label: str
    used: int | None
    allowed: int
    note: str = ""

    @property
    def percent(self) -> int:
        if self.used is None or self.allowed <= 0:
            return 0
        return min(100, round(100 * self.used / self.allowed))

    @property
    def level(self) -> str:
        percent = self.percent
        return "full" if percent >= 100 else "warn" if percent >= 80 else "ok"


def rate_limit_in_use(*, organisation: Organisation, limits: PlanLimits) -> int | None:
    """Requests of the organisation's burst in use right now (peeked, never spent); ``None`` if unknown."""
    try:
        from billing.ratelimit import organisation_buckets, ratelimit_hit

        bucket = organisation_buckets(organisation_id=organisation.pk, plan_slug=organisation.plan_id)[0]
        result = ratelimit_hit(buckets=(bucket,), check="portal", spend=False)
    except Exception as exc:  # the limiter is optional for a page that only displays it
        logger.warning("rate limit state unavailable: %s", exc)
        return None
    if result is None:
        return None
    return max(0, limits.burst - result.states[0].remaining)


def limit_usage(*, organisation: Organisation, counts: TenantCounts) -> list[LimitUsage]:
    limits = plan_limits(slug=organisation.plan_id)
    return [
        LimitUsage("Documents", counts.documents, limits.max_documents),
        LimitUsage("Devices", counts.devices, limits.max_devices),
        LimitUsage(
            "Requests per minute",
            rate_limit_in_use(organisation=organisation, limits=limits),
            limits.burst,
            note=f"{limits.requests_per_minute}/min sustained, bursts of {limits.burst}; bar: burst in use now",
        ),
    ]


def usage_series(*, organisation: Organisation, days: int = 30) -> list[dict[str, Any]]:
    """Pushes, pulls and mutations per day, oldest first (today live from Redis)."""
    try:
        return usage_days(organisation=organisation, days=days)
    except Exception as exc:  # a page must not fail because usage figures are unavailable
        logger.warning("usage figures unavailable: %s", exc)
        return []


def signup_get(*, signup_id: int) -> Signup | None:
    return Signup.objects.filter(pk=signup_id).select_related("organisation").first()


def account_exists(*, email: str) -> bool:
    return User.objects.filter(email__iexact=email).exists()
