"""The subscription state machine: Stripe's current subscription drives the organisation's plan.

Stripe delivers events late, twice and out of order, so nothing here trusts an
event's payload for state: :func:`subscription_sync` locks the organisation's
:class:`~billing.models.BillingAccount`, reads the subscription from Stripe
*while holding the lock* (so of two concurrent syncs the later one also read
the later state), and applies what Stripe says now:

* ``active`` / ``trialing``: the plan whose ``stripe_price_id`` is on the
  subscription; any past-due grace is cleared.
* ``past_due``: the plan is kept until ``grace_until`` (``BILLING_GRACE_DAYS``
  after we first saw it past due); then the organisation drops to free.
* ``canceled`` / ``unpaid`` / ``incomplete_expired`` / ``paused``: free at the
  end of the paid period (at once if it already ended; never later than the end
  of a running past-due grace).
* ``incomplete``: nothing is granted or taken until the first payment succeeds.

Due downgrades happen at once when a sync finds them due, otherwise in the
periodic task ``billing.tasks.downgrade_lapsed_all``. Every change is audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.models import BillingAccount, Plan, SubscriptionStatus
from billing.services import organisation_change_plan
from billing.stripe_client import BillingProviderError, billing_configured, stripe_call, stripe_client
from shared_apps.audit.services import Actor, audit_record

logger = logging.getLogger("outpost.billing")

FREE_PLAN = "free"
STRIPE_ACTOR = Actor.system("stripe")

PAYING = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING})
GRACE = frozenset({SubscriptionStatus.PAST_DUE})
LAPSED = frozenset(
    {
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.UNPAID,
        SubscriptionStatus.INCOMPLETE_EXPIRED,
        SubscriptionStatus.PAUSED,
    }
)
# A subscription that still exists and can be fixed in the customer portal: buying another would bill twice.
OPEN = PAYING | GRACE | {SubscriptionStatus.UNPAID, SubscriptionStatus.PAUSED}

_AUDITED_FIELDS = (
    "stripe_subscription_id",
    "subscription_status",
    "stripe_price_id",
    "plan_id",
    "current_period_end",
    "cancel_at_period_end",
    "past_due_since",
    "grace_until",
    "downgrade_at",
)


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id_of(value: Any) -> str:
    """An id, whether Stripe sent the object expanded or not."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def organisation_id_from_metadata(metadata: Any) -> int | None:
    raw = (metadata or {}).get("organisation_id") if isinstance(metadata, dict) else None
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class SubscriptionState:
    """What Stripe says about a subscription now (parsed from ``subscriptions.retrieve``)."""

    id: str
    customer: str
    status: str
    price_ids: tuple[str, ...]
    current_period_end: datetime | None
    cancel_at_period_end: bool
    organisation_id: int | None

    @classmethod
    def from_stripe(cls, data: dict[str, Any]) -> SubscriptionState:
        items = (data.get("items") or {}).get("data") or []
        price_ids = tuple(pid for pid in (_id_of(item.get("price")) for item in items) if pid)
        # Newer API versions keep the period on each item; older ones on the subscription.
        period_ends = [item["current_period_end"] for item in items if item.get("current_period_end")]
        period_end = max(period_ends) if period_ends else data.get("current_period_end")
        return cls(
            id=str(data["id"]),
            customer=_id_of(data.get("customer")),
            status=str(data.get("status") or ""),
            price_ids=price_ids,
            current_period_end=_timestamp(period_end),
            cancel_at_period_end=bool(data.get("cancel_at_period_end")),
            organisation_id=organisation_id_from_metadata(data.get("metadata")),
        )


def subscription_fetch(*, subscription_id: str) -> SubscriptionState:
    """Read a subscription's current state from Stripe."""
    client = stripe_client()
    subscription = stripe_call(lambda: client.v1.subscriptions.retrieve(subscription_id), what="subscriptions.retrieve")
    return SubscriptionState.from_stripe(subscription.to_dict())


def _plan_for(price_ids: tuple[str, ...]) -> Plan | None:
    if not price_ids:
        return None
    plans = {plan.stripe_price_id: plan for plan in Plan.objects.filter(stripe_price_id__in=price_ids)}
    for price_id in price_ids:
        if price_id in plans:
            return plans[price_id]
    return None


def _adopts(account: BillingAccount, state: SubscriptionState) -> bool:
    """Whether ``state`` is (or may become) the organisation's subscription.

    A late event about an old, ended subscription must not override a newer
    subscription that is still running.
    """
    current = account.stripe_subscription_id
    if not current or current == state.id:
        return True
    current_open = account.subscription_status in OPEN
    return not current_open or state.status in OPEN


def _audit_snapshot(account: BillingAccount) -> dict[str, Any]:
    values = {field: getattr(account, field) for field in _AUDITED_FIELDS}
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in values.items()}


def _downgrade(*, account: BillingAccount, actor: Actor, reason: str) -> bool:
    """Move the organisation to free (audited by the plan change) and clear the pending downgrade."""
    changed = account.organisation.plan_id != FREE_PLAN
    organisation_change_plan(actor=actor, organisation=account.organisation, plan_slug=FREE_PLAN, reason=reason)
    account.downgrade_at = None
    account.save(update_fields=["downgrade_at", "updated_at"])
    return changed


def _apply(*, account: BillingAccount, state: SubscriptionState, actor: Actor, now: datetime) -> str:
    """Apply Stripe's current subscription state to a locked account (inside its transaction)."""
    before = _audit_snapshot(account)
    previous_status = account.subscription_status
    previous_subscription = account.stripe_subscription_id
    previous_period_end = account.current_period_end
    plan = _plan_for(state.price_ids)

    account.stripe_subscription_id = state.id
    account.subscription_status = state.status
    account.stripe_price_id = plan.stripe_price_id if plan else (state.price_ids[0] if state.price_ids else "")
    account.plan = plan
    account.current_period_end = state.current_period_end
    account.cancel_at_period_end = state.cancel_at_period_end
    account.synced_at = now
    if state.customer and not account.stripe_customer_id:
        account.stripe_customer_id = state.customer

    grant = False
    if state.status in PAYING:
        account.past_due_since = account.grace_until = account.downgrade_at = None
        grant = True
    elif state.status in GRACE:
        if account.past_due_since is None:
            account.past_due_since = now
            account.grace_until = now + timedelta(days=settings.BILLING_GRACE_DAYS)
            account.downgrade_at = account.grace_until
        # After the grace period (and the downgrade) a still-unpaid subscription earns nothing back.
        grant = account.grace_until is not None and account.grace_until > now
    elif state.status in LAPSED:
        newly_lapsed = (
            previous_status not in LAPSED
            or previous_subscription != state.id
            or previous_period_end != state.current_period_end
        )
        # Only a transition sets the date: once the downgrade is done (and cleared), a re-read of the
        # same ended subscription must not undo a plan staff set by hand afterwards.
        if newly_lapsed:
            ends = [state.current_period_end] if state.current_period_end else []
            if account.past_due_since and account.grace_until:
                ends.append(account.grace_until)
            account.downgrade_at = min(ends) if ends else now
    # incomplete (and statuses Stripe may add): wait for a state that says something.

    account.save()
    after = _audit_snapshot(account)
    if after != before:
        changed = {key: {"from": before[key], "to": after[key]} for key in after if after[key] != before[key]}
        audit_record(
            actor=actor,
            action="billing.subscription_synced",
            organisation=account.organisation,
            target_type="stripe_subscription",
            target_id=state.id,
            details={"status": state.status, "changes": changed},
        )

    outcome = f"{state.status}"
    if grant:
        if plan is None:
            logger.warning("subscription %s has no price mapped to a plan: %s", state.id, list(state.price_ids))
            outcome += ", price not mapped to a plan"
        else:
            organisation_change_plan(
                actor=actor,
                organisation=account.organisation,
                plan_slug=plan.slug,
                reason=f"stripe subscription {state.id} {state.status}",
            )
            outcome += f", plan {plan.slug}"
    if account.downgrade_at is not None and account.downgrade_at <= now:
        _downgrade(account=account, actor=actor, reason=f"stripe subscription {state.id} {state.status}")
        outcome += ", downgraded to free"
    elif account.downgrade_at is not None:
        outcome += f", free from {account.downgrade_at.isoformat()}"
    return outcome


def subscription_sync(
    *, account: BillingAccount, subscription_id: str, actor: Actor = STRIPE_ACTOR, now: datetime | None = None
) -> str:
    """Re-read ``subscription_id`` from Stripe and apply its current state to the organisation.

    Safe to run any number of times, in any order: the result depends only on
    Stripe's state at the time of the call. Returns a short outcome for the
    event log. Raises :class:`BillingProviderError` when Stripe cannot be read.
    """
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().select_related("organisation").get(pk=account.pk)
        state = subscription_fetch(subscription_id=subscription_id)
        if account.stripe_customer_id and state.customer and state.customer != account.stripe_customer_id:
            logger.warning("subscription %s belongs to %s, not %s", state.id, state.customer, account)
            return "ignored: subscription of another customer"
        if not _adopts(account, state):
            return f"ignored: {state.id} ({state.status}) is not the current subscription"
        return _apply(account=account, state=state, actor=actor, now=now or timezone.now())


def billing_account_downgrade_if_lapsed(
    *, organisation_id: int, actor: Actor = STRIPE_ACTOR, now: datetime | None = None
) -> str:
    """Downgrade an organisation whose grace period or paid period is over.

    The subscription is re-read first, so a payment (or a webhook we missed)
    since the last sync cancels the downgrade. When Stripe cannot be reached the
    downgrade waits for the next run rather than act on possibly stale state.
    """
    now = now or timezone.now()
    with transaction.atomic():
        account = (
            BillingAccount.objects.select_for_update()
            .select_related("organisation")
            .filter(organisation_id=organisation_id)
            .first()
        )
        if account is None or account.downgrade_at is None or account.downgrade_at > now:
            return "not due"
        if account.stripe_subscription_id and billing_configured():
            try:
                state = subscription_fetch(subscription_id=account.stripe_subscription_id)
            except BillingProviderError as exc:
                logger.warning("downgrade of organisation %s postponed: %s", organisation_id, exc.message)
                return "postponed: stripe unavailable"
            return _apply(account=account, state=state, actor=actor, now=now)
        _downgrade(account=account, actor=actor, reason=f"subscription {account.subscription_status or 'ended'}")
        return "downgraded to free"
