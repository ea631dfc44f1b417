"""Stripe webhook events: stored once by id, processed after commit by a Celery task.

:func:`stripe_event_record` is all the webhook view does after verifying the
signature: insert the event (a redelivery of a known id inserts nothing and
is not processed again) and, after commit, queue
``billing.tasks.process_stripe_event`` on the platform queue.

:func:`stripe_event_process` runs in that task. It claims the event row
(``FOR UPDATE SKIP LOCKED``), dispatches on the event type, and marks the row
processed in the same transaction as the effects. Handlers take only ids from
the payload (customer, subscription, organisation) and re-read the
subscription from Stripe (:func:`billing.subscriptions.subscription_sync`),
so processing twice, or in any order, gives the same result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.models import BillingAccount, StripeEvent
from billing.subscriptions import STRIPE_ACTOR, organisation_id_from_metadata, subscription_sync
from tenants.models import Organisation, OrganisationStatus

logger = logging.getLogger("outpost.billing")

HANDLED_EVENT_TYPES = (
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_failed",
)


def stripe_event_record(*, payload: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event; returns ``(event, created)``.

    A known id is not processed again, unless its processing never finished
    (then it is queued again: processing is safe to repeat).
    """
    with transaction.atomic():
        event, created = StripeEvent.objects.get_or_create(
            stripe_id=str(payload["id"]),
            defaults={
                "type": str(payload.get("type") or ""),
                "livemode": bool(payload.get("livemode")),
                "payload": payload,
            },
        )
        if created or event.processed_at is None:
            transaction.on_commit(lambda: _enqueue(event.pk))
    return event, created


def _enqueue(stripe_event_pk: int) -> None:
    from billing.tasks import process_stripe_event

    process_stripe_event.apply_async(args=[stripe_event_pk], queue=settings.PLATFORM_QUEUE)


def _live_organisation(organisation_id: int | None) -> Organisation | None:
    if organisation_id is None:
        return None
    return (
        Organisation.all_objects.filter(pk=organisation_id)
        .exclude(status=OrganisationStatus.DELETED)
        .exclude(schema_name="public")
        .first()
    )


def _account_for(*, customer_id: str, organisation_id: int | None) -> BillingAccount | None:
    """The billing account an event is about: by Stripe customer, else by our organisation id.

    The organisation id comes from metadata or ``client_reference_id`` that
    Outpost itself set on the Checkout session and subscription.
    """
    if customer_id:
        account = BillingAccount.objects.filter(stripe_customer_id=customer_id).first()
        if account is not None:
            return account
    organisation = _live_organisation(organisation_id)
    if organisation is None:
        return None
    with transaction.atomic():
        BillingAccount.objects.get_or_create(organisation=organisation)
        account = BillingAccount.objects.select_for_update().get(organisation=organisation)
        if customer_id and not account.stripe_customer_id:
            account.stripe_customer_id = customer_id
            account.save(update_fields=["stripe_customer_id", "updated_at"])
        elif customer_id and account.stripe_customer_id != customer_id:
            logger.warning(
                "event names customer %s for organisation %s, which has %s",
                customer_id,
                organisation.pk,
                account.stripe_customer_id,
            )
            return None
    return account


def _id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


Outcome = tuple[str, int | None]


def _sync(account: BillingAccount | None, subscription_id: str) -> Outcome:
    if account is None:
        return "ignored: no organisation for this customer", None
    if not subscription_id:
        return "ignored: no subscription", account.organisation_id
    if account.organisation.status == OrganisationStatus.DELETED:
        return "ignored: organisation deleted", account.organisation_id
    return subscription_sync(account=account, subscription_id=subscription_id, actor=STRIPE_ACTOR), (
        account.organisation_id
    )


def _checkout_completed(obj: dict[str, Any]) -> Outcome:
    if obj.get("mode") != "subscription":
        return "ignored: not a subscription checkout", None
    organisation_id = organisation_id_from_metadata(
        {"organisation_id": obj.get("client_reference_id")}
    ) or organisation_id_from_metadata(obj.get("metadata"))
    account = _account_for(customer_id=_id(obj.get("customer")), organisation_id=organisation_id)
    return _sync(account, _id(obj.get("subscription")))


def _subscription_changed(obj: dict[str, Any]) -> Outcome:
    account = _account_for(
        customer_id=_id(obj.get("customer")), organisation_id=organisation_id_from_metadata(obj.get("metadata"))
    )
    return _sync(account, _id(obj.get("id")))


def _invoice_changed(obj: dict[str, Any]) -> Outcome:
    # The invoice's subscription moved under parent.subscription_details in newer API versions.
    details = ((obj.get("parent") or {}).get("subscription_details")) or {}
    subscription_id = _id(details.get("subscription")) or _id(obj.get("subscription"))
    if not subscription_id:
        return "ignored: invoice without a subscription", None
    account = _account_for(
        customer_id=_id(obj.get("customer")), organisation_id=organisation_id_from_metadata(details.get("metadata"))
    )
    return _sync(account, subscription_id)


_HANDLERS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "customer.subscription.paused": _subscription_changed,
    "customer.subscription.resumed": _subscription_changed,
    "invoice.paid": _invoice_changed,
    "invoice.payment_failed": _invoice_changed,
}


def stripe_event_process(*, stripe_event_pk: int) -> str:
    """Apply one stored event (see the module docstring); returns its outcome.

    Does nothing if the event is already processed or another worker holds it.
    On failure the transaction rolls back, ``attempts``/``last_error`` are
    recorded, and the exception propagates (the task decides about retrying).
    """
    try:
        with transaction.atomic():
            event = (
                StripeEvent.objects.select_for_update(skip_locked=True)
                .filter(pk=stripe_event_pk, processed_at__isnull=True)
                .first()
            )
            if event is None:
                return "skipped: already processed or in progress"
            handler = _HANDLERS.get(event.type)
            obj = (event.payload.get("data") or {}).get("object") or {}
            outcome, organisation_id = handler(obj) if handler else ("ignored: event type not handled", None)
            event.processed_at = timezone.now()
            event.attempts += 1
            event.outcome = outcome[:300]
            event.last_error = ""
            event.organisation_id = organisation_id
            event.save(update_fields=["processed_at", "attempts", "outcome", "last_error", "organisation"])
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if exc.__cause__ is not None:
            error += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
        StripeEvent.objects.filter(pk=stripe_event_pk).update(attempts=F("attempts") + 1, last_error=error[:2000])
        raise
    logger.info("stripe event %s (%s): %s", event.stripe_id, event.type, outcome)
    return outcome
