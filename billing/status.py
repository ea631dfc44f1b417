"""What the portal shows about an organisation's billing: one read, one small dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from billing.models import BillingAccount, SubscriptionStatus
from billing.selectors import plan_limits
from billing.subscriptions import LAPSED
from tenants.models import Organisation


@dataclass(frozen=True)
class BillingStatus:
    status: str
    """Stripe's subscription status; ``""`` when the organisation never subscribed."""
    plan: str
    plan_name: str
    grace_until: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    downgrade_at: datetime | None
    banner: str | None
    """A sentence for a warning banner, or ``None`` when all is well."""


def _day(value: datetime) -> str:
    return f"{value.day} {value:%B %Y}"


def _banner(account: BillingAccount, plan_name: str) -> str | None:
    now = timezone.now()
    status = account.subscription_status
    if status == SubscriptionStatus.PAST_DUE:
        if account.grace_until and account.grace_until > now:
            return (
                f"Your last payment failed. Update your payment method before {_day(account.grace_until)} "
                f"to keep the {plan_name} plan."
            )
        return "Your last payment failed and the grace period is over. Update your payment method to resubscribe."
    if status in LAPSED and account.downgrade_at and account.downgrade_at > now:
        return f"Your subscription has ended. The organisation moves to the Free plan on {_day(account.downgrade_at)}."
    if status == SubscriptionStatus.UNPAID:
        return "Your subscription is unpaid. Update your payment method to resubscribe."
    if account.cancel_at_period_end and account.current_period_end and status in ("active", "trialing"):
        return f"Your subscription is cancelled and ends on {_day(account.current_period_end)}."
    if status == SubscriptionStatus.INCOMPLETE:
        return "Your payment has not completed yet."
    return None


def billing_status_for(organisation: Organisation) -> BillingStatus:
    """The organisation's subscription state, its plan and the banner to show (one query)."""
    plan = plan_limits(slug=organisation.plan_id)
    account = BillingAccount.objects.filter(organisation_id=organisation.pk).first()
    if account is None:
        return BillingStatus("", plan.slug, plan.name, None, None, False, None, None)
    return BillingStatus(
        status=account.subscription_status,
        plan=plan.slug,
        plan_name=plan.name,
        grace_until=account.grace_until,
        current_period_end=account.current_period_end,
        cancel_at_period_end=account.cancel_at_period_end,
        downgrade_at=account.downgrade_at,
        banner=_banner(account, plan.name),
    )
