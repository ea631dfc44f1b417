"""The billing page: plan, limits and usage; Stripe Checkout and the customer portal for owners."""

from __future__ import annotations

import pytest

from billing.models import BillingAccount
from shared_apps.audit.models import AuditEvent
from tests.billing.stripe_stub import stripe_stub_fixture  # noqa: F401 - provides the stripe_stub fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def priced(plan_limits) -> None:
    plan_limits("pro", stripe_price_id="price_pro")


def test_without_stripe_the_page_has_no_payment_buttons(owner, settings) -> None:
    settings.STRIPE_SECRET_KEY = ""
    url = f"/o/{owner.organisation.slug}/billing/"
    page = owner.client.get(url)
    assert b"Online payments are not configured on this installation" in page.content
    assert b"billing/checkout/" not in page.content
    refused = owner.client.post(f"{url}checkout/", {"plan": "pro"})
    assert refused["Location"] == url
    assert b"Billing is not configured on this Outpost installation." in owner.client.get(url).content


def test_an_owner_buys_a_plan_with_stripe_checkout(owner, stripe_stub, priced) -> None:
    url = f"/o/{owner.organisation.slug}/billing/"
    page = owner.client.get(url)
    assert b"Choose Pro" in page.content
    assert b"Manage billing" not in page.content  # no Stripe customer yet
    response = owner.client.post(f"{url}checkout/", {"plan": "pro"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert '<meta http-equiv="refresh" content="0;url=https://checkout.stripe.test/c/pay/cs_' in html
    session = stripe_stub.calls("POST", "/v1/checkout/sessions")[0].form
    assert session["line_items[0][price]"] == "price_pro"
    assert session["success_url"].endswith("/portal/billing/?checkout=success&session_id={CHECKOUT_SESSION_ID}")
    account = BillingAccount.objects.get(organisation=owner.organisation)
    assert account.stripe_customer_id.startswith("cus_")
    events = AuditEvent.objects.filter(organisation=owner.organisation, action__startswith="billing.")
    assert events.filter(action="billing.customer_created", actor=owner.user).count() == 1

    manage = owner.client.post(f"{url}manage/")
    assert 'content="0;url=https://billing.stripe.test/p/session/' in manage.content.decode()
    assert b"Manage billing" in owner.client.get(url).content


def test_plans_that_cannot_be_bought_are_explained(owner, stripe_stub) -> None:
    url = f"/o/{owner.organisation.slug}/billing/"
    response = owner.client.post(f"{url}checkout/", {"plan": "pro"})  # no Stripe price configured
    assert response["Location"] == url
    assert b"cannot be bought online" in owner.client.get(url).content


def test_stripe_sends_people_back_to_their_billing_page(owner) -> None:
    slug = owner.organisation.slug
    owner.client.get(f"/o/{slug}/")
    back = owner.client.get("/portal/billing/?checkout=success&session_id=cs_1")
    assert back["Location"] == f"/o/{slug}/billing/?checkout=success&session_id=cs_1"
    page = owner.client.get(back["Location"])
    assert b"Your plan changes as soon as Stripe confirms the payment." in page.content
    cancelled = owner.client.get(owner.client.get("/portal/billing/?checkout=cancelled")["Location"])
    assert b"Checkout was cancelled; nothing changed." in cancelled.content
