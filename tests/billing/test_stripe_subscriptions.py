"""Subscription states drive the plan: active, past_due with a grace period, canceled, invoices."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing.models import BillingAccount
from billing.status import billing_status_for
from billing.tasks import downgrade_lapsed_all
from shared_apps.audit.models import AuditEvent
from tests.billing.stripe_stub import (
    event,
    post_event,
    stripe_stub_fixture,  # noqa: F401 - provides the stripe_stub fixture
)


@pytest.fixture
def account(org, plan_limits) -> BillingAccount:
    plan_limits("pro", stripe_price_id="price_pro")
    plan_limits("business", stripe_price_id="price_business")
    return BillingAccount.objects.create(organisation=org.organisation, stripe_customer_id="cus_acme")


@pytest.fixture
def deliver(client, stripe_stub, django_capture_on_commit_callbacks):
    """Post a signed event and run what happens after commit (the processing task)."""

    def send(event_type: str, obj: dict) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_event(client, event(event_type, copy.deepcopy(obj)))
        assert response.status_code == 200, response.content

    return send


def plan_of(org) -> str:
    org.organisation.refresh_from_db()
    return org.organisation.plan_id


def invoice(event_subscription: str, *, legacy: bool = False) -> dict:
    """An invoice in the current API shape (``parent.subscription_details``) or the pre-2025 one."""
    base = {"id": "in_1", "object": "invoice", "customer": "cus_acme"}
    if legacy:
        return base | {"subscription": event_subscription}
    details = {"subscription": event_subscription}
    return base | {"parent": {"type": "subscription_details", "subscription_details": details}}


def test_past_due_keeps_the_plan_for_the_grace_period_then_the_periodic_task_downgrades(
    org, account, stripe_stub, deliver, settings
) -> None:
    settings.BILLING_GRACE_DAYS = 7
    active = stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    deliver("customer.subscription.created", active)
    assert plan_of(org) == "pro"

    past_due = stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="past_due")
    before = timezone.now()
    deliver("customer.subscription.updated", past_due)

    account.refresh_from_db()
    assert plan_of(org) == "pro"
    assert account.subscription_status == "past_due"
    assert before <= account.past_due_since <= timezone.now()
    assert account.grace_until == account.past_due_since + timedelta(days=7)
    assert account.downgrade_at == account.grace_until
    status = billing_status_for(org.organisation)
    assert (status.status, status.plan, status.grace_until) == ("past_due", "pro", account.grace_until)
    assert "payment failed" in status.banner
    assert "Pro" in status.banner

    # Within the grace period the periodic task leaves the organisation alone.
    assert downgrade_lapsed_all() == 0
    assert plan_of(org) == "pro"

    # Eight days later, still past due.
    past = timezone.now() - timedelta(days=8)
    BillingAccount.objects.filter(pk=account.pk).update(
        past_due_since=past, grace_until=past + timedelta(days=7), downgrade_at=past + timedelta(days=7)
    )
    assert downgrade_lapsed_all() == 1
    assert plan_of(org) == "free"
    change = AuditEvent.objects.filter(action="organisation.plan_changed").latest("id")
    assert (change.actor_label, change.details["from"], change.details["to"]) == ("stripe", "pro", "free")
    account.refresh_from_db()
    assert account.downgrade_at is None
    assert billing_status_for(org.organisation).banner.startswith("Your last payment failed and the grace period")
    # The subscription was re-read before downgrading.
    assert len(stripe_stub.calls("GET", "/v1/subscriptions/sub_1")) == 3

    # Still past due on a later event: nothing comes back until it is paid.
    deliver("invoice.payment_failed", invoice("sub_1"))
    assert plan_of(org) == "free"
    assert downgrade_lapsed_all() == 0


def test_a_payment_during_the_grace_period_cancels_the_downgrade(org, account, stripe_stub, deliver) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="past_due")
    deliver("invoice.payment_failed", invoice("sub_1"))
    account.refresh_from_db()
    assert (account.subscription_status, plan_of(org)) == ("past_due", "pro")
    assert account.grace_until is not None

    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="active")
    deliver("invoice.paid", invoice("sub_1", legacy=True))
    account.refresh_from_db()
    assert account.subscription_status == "active"
    assert (account.past_due_since, account.grace_until, account.downgrade_at) == (None, None, None)
    assert plan_of(org) == "pro"
    assert billing_status_for(org.organisation).banner is None


def test_the_periodic_task_does_not_downgrade_a_subscription_paid_since(org, account, stripe_stub, deliver) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="past_due")
    deliver("invoice.payment_failed", invoice("sub_1"))
    BillingAccount.objects.filter(pk=account.pk).update(downgrade_at=timezone.now() - timedelta(minutes=1))
    # Paid, but the webhook has not arrived (yet): the task reads Stripe before acting.
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="active")
    downgrade_lapsed_all()
    assert plan_of(org) == "pro"
    account.refresh_from_db()
    assert (account.subscription_status, account.downgrade_at) == ("active", None)


def test_canceled_keeps_the_plan_until_the_period_ends(org, account, stripe_stub, deliver) -> None:
    period_end = int(time.time()) + 5 * 86400
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", period_end=period_end)
    deliver("customer.subscription.created", stripe_stub.subscriptions["sub_1"])
    ending = stripe_stub.set_subscription(
        "sub_1", customer="cus_acme", price="price_pro", period_end=period_end, cancel_at_period_end=True
    )
    deliver("customer.subscription.updated", ending)
    assert billing_status_for(org.organisation).banner.startswith("Your subscription is cancelled and ends on")

    canceled = stripe_stub.set_subscription(
        "sub_1", customer="cus_acme", price="price_pro", status="canceled", period_end=period_end
    )
    deliver("customer.subscription.deleted", canceled)
    account.refresh_from_db()
    assert plan_of(org) == "pro"
    assert account.downgrade_at == datetime.fromtimestamp(period_end, tz=UTC)
    assert "moves to the Free plan" in billing_status_for(org.organisation).banner
    assert downgrade_lapsed_all() == 0

    # The period ends.
    ended = int(time.time()) - 60
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="canceled", period_end=ended)
    BillingAccount.objects.filter(pk=account.pk).update(
        current_period_end=datetime.fromtimestamp(ended, tz=UTC), downgrade_at=datetime.fromtimestamp(ended, tz=UTC)
    )
    assert downgrade_lapsed_all() == 1
    assert plan_of(org) == "free"
    assert billing_status_for(org.organisation).banner is None


@pytest.mark.parametrize("status", ["canceled", "unpaid", "incomplete_expired"])
def test_ended_subscriptions_whose_period_is_over_downgrade_at_once(org, account, stripe_stub, deliver, status) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    deliver("customer.subscription.created", stripe_stub.subscriptions["sub_1"])
    assert plan_of(org) == "pro"
    ended = stripe_stub.set_subscription(
        "sub_1", customer="cus_acme", price="price_pro", status=status, period_end=int(time.time()) - 3600
    )
    deliver("customer.subscription.deleted", ended)
    assert plan_of(org) == "free"
    account.refresh_from_db()
    assert (account.subscription_status, account.downgrade_at) == (status, None)


def test_a_plan_set_by_staff_after_the_downgrade_stays(org, account, stripe_stub, deliver) -> None:
    from billing.services import organisation_change_plan
    from shared_apps.audit.services import CLI

    ended = stripe_stub.set_subscription(
        "sub_1", customer="cus_acme", price="price_pro", status="canceled", period_end=int(time.time()) - 3600
    )
    deliver("customer.subscription.deleted", ended)
    organisation_change_plan(actor=CLI, organisation=org.organisation, plan_slug="enterprise")
    deliver("invoice.payment_failed", invoice("sub_1"))
    assert downgrade_lapsed_all() == 0
    assert plan_of(org) == "enterprise"


def test_incomplete_grants_nothing_yet(org, account, stripe_stub, deliver) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro", status="incomplete")
    deliver("customer.subscription.created", stripe_stub.subscriptions["sub_1"])
    assert plan_of(org) == "free"
    assert billing_status_for(org.organisation).banner == "Your payment has not completed yet."


def test_a_price_without_a_plan_changes_nothing(org, account, stripe_stub, deliver) -> None:
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_unknown")
    deliver("customer.subscription.created", stripe_stub.subscriptions["sub_1"])
    assert plan_of(org) == "free"
    account.refresh_from_db()
    assert (account.stripe_price_id, account.plan_id) == ("price_unknown", None)


def test_billing_status_without_an_account(org) -> None:
    status = billing_status_for(org.organisation)
    assert (status.status, status.plan, status.plan_name, status.banner) == ("", "free", "Free", None)


def test_billing_status_is_one_query(org, account, django_assert_num_queries) -> None:
    billing_status_for(org.organisation)  # the plan's limits are cached from here on
    with django_assert_num_queries(1):
        billing_status_for(org.organisation)
