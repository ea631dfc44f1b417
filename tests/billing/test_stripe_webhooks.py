"""The Stripe webhook: signature checks on the raw body, one row per event id, processing after commit."""

from __future__ import annotations

import copy
import json
import time

import pytest
from celery.exceptions import Retry

from billing.models import BillingAccount, StripeEvent
from shared_apps.audit.models import AuditEvent
from tests.billing.stripe_stub import (
    WEBHOOK_URL,
    event,
    post_event,
    sign,
    stripe_stub_fixture,  # noqa: F401 - provides the stripe_stub fixture
)


@pytest.fixture
def account(org, plan_limits) -> BillingAccount:
    """Acme has a Stripe customer (made by an earlier checkout); pro and business have prices."""
    plan_limits("pro", stripe_price_id="price_pro")
    plan_limits("business", stripe_price_id="price_business")
    return BillingAccount.objects.create(organisation=org.organisation, stripe_customer_id="cus_acme")


def plan_of(org) -> str:
    org.organisation.refresh_from_db()
    return org.organisation.plan_id


def checkout_completed(subscription_id: str, organisation_id: int, customer: str = "cus_acme") -> dict:
    return event(
        "checkout.session.completed",
        {
            "id": "cs_test_1",
            "object": "checkout.session",
            "mode": "subscription",
            "client_reference_id": str(organisation_id),
            "customer": customer,
            "subscription": subscription_id,
            "status": "complete",
        },
    )


def test_a_signed_event_is_stored_and_processed_after_commit(
    client, org, account, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    payload = checkout_completed("sub_1", org.organisation.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_event(client, payload)

    assert response.status_code == 200
    assert response.json() == {"received": True, "id": payload["id"], "duplicate": False}
    # Nothing is processed inside the request: only once its transaction commits.
    assert StripeEvent.objects.get(stripe_id=payload["id"]).processed_at is None
    assert stripe_stub.requests == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert plan_of(org) == "pro"
    stored = StripeEvent.objects.get(stripe_id=payload["id"])
    assert stored.type == "checkout.session.completed"
    assert stored.payload == payload
    assert stored.processed_at is not None
    assert stored.attempts == 1
    assert stored.organisation_id == org.organisation.pk
    assert stored.outcome.startswith("active")
    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.subscription_status, account.plan_id) == ("sub_1", "active", "pro")
    assert account.current_period_end is not None
    change = AuditEvent.objects.get(action="organisation.plan_changed", organisation=org.organisation)
    assert change.actor_label == "stripe"
    assert change.details["from"] == "free"
    assert change.details["to"] == "pro"
    assert AuditEvent.objects.filter(action="billing.subscription_synced", actor_label="stripe").count() == 1
    # The subscription was read from Stripe, not taken from the event.
    assert [r.path for r in stripe_stub.calls("GET", "/v1/subscriptions/")] == ["/v1/subscriptions/sub_1"]


def test_a_bad_signature_is_refused_and_nothing_is_stored(client, account, stripe_stub) -> None:
    payload = json.dumps(checkout_completed("sub_1", 1))
    wrong_secret = post_event(client, payload, secret="whsec_someone_else")
    tampered = client.post(
        WEBHOOK_URL,
        data=payload.replace("sub_1", "sub_2"),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload),
    )
    unsigned = client.post(WEBHOOK_URL, data=payload, content_type="application/json")
    garbage = client.post(WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE="nonsense")
    for response in (wrong_secret, tampered, unsigned, garbage):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_signature"
        assert set(response.json()["error"]) == {"code", "message", "details"}
    assert not StripeEvent.objects.exists()
    assert stripe_stub.requests == []


def test_a_stale_timestamp_is_refused(client, account, stripe_stub) -> None:
    payload = checkout_completed("sub_1", 1)
    response = post_event(client, payload, timestamp=int(time.time()) - 301)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert "tolerance" in response.json()["error"]["details"]["reason"].lower()
    fresh = post_event(client, payload, timestamp=int(time.time()) - 200)
    assert fresh.status_code == 200
    assert StripeEvent.objects.count() == 1


def test_a_signed_body_that_is_not_an_event_is_refused(client, stripe_stub) -> None:
    response = post_event(client, json.dumps({"object": "event", "hello": "world"}))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_payload")


def test_a_replayed_event_is_a_no_op(client, org, account, stripe_stub, django_capture_on_commit_callbacks) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    payload = checkout_completed("sub_1", org.organisation.pk)
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, payload)
    audit_rows = AuditEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        replay = post_event(client, payload)

    assert replay.status_code == 200
    assert replay.json()["duplicate"] is True
    assert callbacks == []
    assert StripeEvent.objects.count() == 1
    assert StripeEvent.objects.get().attempts == 1
    assert len(stripe_stub.calls("GET", "/v1/subscriptions/")) == 1
    assert AuditEvent.objects.count() == audit_rows


def test_an_older_event_arriving_late_does_not_roll_the_plan_back(
    client, org, account, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    now = int(time.time())
    older = stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    older_event = event("customer.subscription.updated", copy.deepcopy(older), created=now - 60)
    # The customer then upgrades to business: that is the subscription's state from now on.
    newer = stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_business")
    newer_event = event("customer.subscription.updated", copy.deepcopy(newer), created=now)

    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, newer_event)
    assert plan_of(org) == "business"
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, older_event)

    assert plan_of(org) == "business"
    assert AuditEvent.objects.filter(action="organisation.plan_changed").count() == 1
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 2


def test_the_payload_is_never_trusted_for_state(
    client, org, account, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    current = stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    claimed = copy.deepcopy(current) | {"status": "canceled"}
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("customer.subscription.deleted", claimed))
    assert plan_of(org) == "pro"
    account.refresh_from_db()
    assert account.subscription_status == "active"


def test_a_late_event_about_an_old_subscription_does_not_replace_the_running_one(
    client, org, account, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    old = stripe_stub.set_subscription("sub_old", customer="cus_acme", price="price_pro", status="canceled")
    stripe_stub.set_subscription("sub_new", customer="cus_acme", price="price_business")
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, checkout_completed("sub_new", org.organisation.pk))
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("customer.subscription.deleted", copy.deepcopy(old)))

    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.subscription_status) == ("sub_new", "active")
    assert plan_of(org) == "business"
    assert "not the current subscription" in StripeEvent.objects.get(type="customer.subscription.deleted").outcome


def test_subscription_events_find_the_organisation_by_metadata(
    client, org, plan_limits, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    plan_limits("pro", stripe_price_id="price_pro")
    subscription = stripe_stub.set_subscription(
        "sub_1", customer="cus_new", price="price_pro", metadata={"organisation_id": str(org.organisation.pk)}
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("customer.subscription.created", copy.deepcopy(subscription)))
    assert plan_of(org) == "pro"
    assert BillingAccount.objects.get(organisation=org.organisation).stripe_customer_id == "cus_new"


def test_events_for_unknown_customers_and_unhandled_types_are_recorded_and_ignored(
    client, org, account, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    stranger = stripe_stub.set_subscription("sub_x", customer="cus_stranger")
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("customer.subscription.created", copy.deepcopy(stranger)))
        post_event(client, event("charge.refunded", {"id": "ch_1", "object": "charge"}))
    outcomes = dict(StripeEvent.objects.values_list("type", "outcome"))
    assert outcomes["customer.subscription.created"].startswith("ignored: no organisation")
    assert outcomes["charge.refunded"] == "ignored: event type not handled"
    assert plan_of(org) == "free"


def test_a_failed_processing_is_recorded_and_a_redelivery_finishes_it(
    client, org, account, stripe_stub, django_capture_on_commit_callbacks
) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    payload = checkout_completed("sub_1", org.organisation.pk)
    stripe_stub.fail_next("GET", "/v1/subscriptions/", status=500)
    # Stripe unreachable: the task asks Celery to retry later (eager in tests, so the retry surfaces here).
    with pytest.raises(Retry), django_capture_on_commit_callbacks(execute=True):
        post_event(client, payload)
    stored = StripeEvent.objects.get()
    assert stored.processed_at is None
    assert stored.attempts == 1
    assert "BillingProviderError" in stored.last_error
    assert plan_of(org) == "free"

    with django_capture_on_commit_callbacks(execute=True):
        redelivery = post_event(client, payload)
    assert redelivery.json()["duplicate"] is True
    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert (stored.attempts, stored.last_error) == (2, "")
    assert plan_of(org) == "pro"


def test_webhook_not_configured_is_503(client, settings) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = post_event(client, checkout_completed("sub_1", 1))
    assert (response.status_code, response.json()["error"]["code"]) == (503, "billing_not_configured")


def test_webhook_only_takes_post(client, stripe_stub) -> None:
    response = client.get(WEBHOOK_URL)
    assert (response.status_code, response.json()["error"]["code"]) == (405, "method_not_allowed")
