"""Buying and managing a plan: Stripe Checkout and the Stripe customer portal.

Called by the portal pages (with ``Actor.for_user(user)``: owners only) and by
the billing API (with the API key's actor; the view requires the ``admin``
scope). Both return a Stripe-hosted URL to send the browser to; what the
customer then does reaches Outpost through webhooks (:mod:`billing.stripe_events`).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing.models import BillingAccount, Plan
from billing.stripe_client import billing_return_urls, stripe_call, stripe_client
from billing.subscriptions import OPEN
from shared_apps.accounts.models import Membership, MembershipRole
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import Conflict, Forbidden, InvalidInput
from tenants.models import Organisation


def _require_owner(*, actor: Actor, organisation: Organisation) -> None:
    """A person must own the organisation; API keys are checked by the view's scope instead."""
    if actor.user is None:
        return
    is_owner = Membership.objects.filter(user=actor.user, organisation=organisation, role=MembershipRole.OWNER).exists()
    if not is_owner:
        raise Forbidden("Only an owner of the organisation can manage its billing.", code="owner_required")


def billing_account_ensure_customer(*, actor: Actor, organisation: Organisation) -> BillingAccount:
    """The organisation's billing account, with a Stripe customer (created once, audited).

    The account row stays locked while the customer is created, so concurrent
    first purchases create one customer, not two. A crash between Stripe's
    answer and the commit leaves an unused customer in Stripe, nothing worse.
    """
    client = stripe_client()
    with transaction.atomic():
        BillingAccount.objects.get_or_create(organisation=organisation)
        account = BillingAccount.objects.select_for_update().get(organisation=organisation)
        if account.stripe_customer_id:
            return account
        params: dict[str, Any] = {
            "name": organisation.name,
            "metadata": {"organisation_id": str(organisation.pk), "organisation_slug": organisation.slug},
        }
        if actor.user is not None:
            params["email"] = actor.user.email
        customer = stripe_call(lambda: client.v1.customers.create(params=params), what="customers.create")
        account.stripe_customer_id = customer.id
        account.save(update_fields=["stripe_customer_id", "updated_at"])
        audit_record(
            actor=actor,
            action="billing.customer_created",
            organisation=organisation,
            target_type="stripe_customer",
            target_id=customer.id,
        )
    return account


def _purchasable_plan(plan_slug: str) -> Plan:
    plan = Plan.objects.filter(slug=plan_slug).first()
    if plan is None:
        raise InvalidInput(f"No plan {plan_slug!r}.", code="unknown_plan", details={"plan": plan_slug})
    if not plan.stripe_price_id or not plan.is_public:
        raise InvalidInput(
            f"The {plan.name} plan cannot be bought online.", code="plan_not_purchasable", details={"plan": plan.slug}
        )
    return plan


def checkout_session_create(*, actor: Actor, organisation: Organisation, plan_slug: str) -> str:
    """Start a Stripe Checkout (subscription mode) for ``plan_slug``; returns the URL to redirect to.

    Refused with ``subscription_exists`` while the organisation has a running
    subscription: plan changes then go through the customer portal, so nobody
    ends up paying for two subscriptions.
    """
    _require_owner(actor=actor, organisation=organisation)
    client = stripe_client()
    plan = _purchasable_plan(plan_slug)
    account = billing_account_ensure_customer(actor=actor, organisation=organisation)
    if account.stripe_subscription_id and account.subscription_status in OPEN:
        raise Conflict(
            "The organisation already has a subscription; change or cancel it in the billing portal.",
            code="subscription_exists",
            details={"status": account.subscription_status, "plan": account.plan_id},
        )
    price = stripe_call(lambda: client.v1.prices.retrieve(plan.stripe_price_id), what="prices.retrieve").to_dict()
    recurring = price.get("recurring") or {}
    if not recurring or price.get("active") is False:
        raise InvalidInput(
            f"The {plan.name} plan's Stripe price is not an active recurring price.",
            code="plan_not_purchasable",
            details={"plan": plan.slug, "price": plan.stripe_price_id},
        )
    line_item: dict[str, Any] = {"price": plan.stripe_price_id}
    if recurring.get("usage_type") != "metered":
        # Stripe refuses a quantity on metered prices and requires one on licensed prices.
        line_item["quantity"] = 1
    metadata = {"organisation_id": str(organisation.pk), "plan": plan.slug}
    urls = billing_return_urls()
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": account.stripe_customer_id,
        "client_reference_id": str(organisation.pk),
        "line_items": [line_item],
        "success_url": urls["success"],
        "cancel_url": urls["cancel"],
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
    }
    session = stripe_call(lambda: client.v1.checkout.sessions.create(params=params), what="checkout.sessions.create")
    return str(session.url)


def portal_session_create(*, actor: Actor, organisation: Organisation) -> str:
    """Open the Stripe customer portal (change plan, payment method, invoices, cancel); returns its URL."""
    _require_owner(actor=actor, organisation=organisation)
    client = stripe_client()
    account = billing_account_ensure_customer(actor=actor, organisation=organisation)
    params = {"customer": account.stripe_customer_id, "return_url": billing_return_urls()["portal_return"]}
    session = stripe_call(
        lambda: client.v1.billing_portal.sessions.create(params=params), what="billing_portal.sessions.create"
    )
    return str(session.url)
