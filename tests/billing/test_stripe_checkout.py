"""Checkout and customer portal: through the API (admin-scoped keys) and the services the portal calls."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from billing.checkout import checkout_session_create, portal_session_create
from billing.models import BillingAccount
from shared_apps.accounts.services import membership_add, user_get_or_create
from shared_apps.audit.models import AuditEvent
from shared_apps.audit.services import CLI, Actor
from shared_apps.core.errors import Forbidden
from tests.billing.stripe_stub import stripe_stub_fixture  # noqa: F401 - provides the stripe_stub fixture

CHECKOUT = "/api/v1/billing/checkout"
PORTAL = "/api/v1/billing/portal"


@pytest.fixture
def priced(plan_limits) -> None:
    plan_limits("pro", stripe_price_id="price_pro")
    plan_limits("business", stripe_price_id="price_business", stripe_meter_event_name="outpost_mutations")


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_checkout_returns_the_session_url_and_creates_the_customer_once(org, stripe_stub, priced) -> None:
    client = org.client()
    first = client.post(CHECKOUT, {"plan": "pro"}, format="json")
    second = client.post(CHECKOUT, {"plan": "pro"}, format="json")

    assert first.status_code == 200, first.content
    assert first.json()["url"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    assert second.json()["url"] != first.json()["url"]
    customers = stripe_stub.calls("POST", "/v1/customers")
    assert len(customers) == 1
    organisation = org.organisation
    assert customers[0].form["metadata[organisation_id]"] == str(organisation.pk)
    account = BillingAccount.objects.get(organisation=organisation)
    assert account.stripe_customer_id.startswith("cus_")

    session = stripe_stub.calls("POST", "/v1/checkout/sessions")[0].form
    assert session["mode"] == "subscription"
    assert session["customer"] == account.stripe_customer_id
    assert session["client_reference_id"] == str(organisation.pk)
    assert session["line_items[0][price]"] == "price_pro"
    assert session["line_items[0][quantity]"] == "1"
    assert session["subscription_data[metadata][organisation_id]"] == str(organisation.pk)
    assert session["subscription_data[metadata][plan]"] == "pro"
    assert session["success_url"].startswith("http")
    assert "{CHECKOUT_SESSION_ID}" in session["success_url"]
    assert AuditEvent.objects.filter(action="billing.customer_created", organisation=organisation).count() == 1


def test_a_metered_price_is_bought_without_a_quantity(org, stripe_stub, priced) -> None:
    stripe_stub.set_price("price_business", usage_type="metered")
    response = org.client().post(CHECKOUT, {"plan": "business"}, format="json")
    assert response.status_code == 200
    session = stripe_stub.calls("POST", "/v1/checkout/sessions")[0].form
    assert session["line_items[0][price]"] == "price_business"
    assert "line_items[0][quantity]" not in session


def test_portal_returns_the_session_url(org, stripe_stub, priced, settings) -> None:
    settings.BILLING_PORTAL_RETURN_URL = "https://app.example.com/billing"
    response = org.client().post(PORTAL)
    assert response.status_code == 200
    assert response.json()["url"].startswith("https://billing.stripe.test/p/session/bps_")
    portal = stripe_stub.calls("POST", "/v1/billing_portal/sessions")[0].form
    assert portal["customer"] == BillingAccount.objects.get(organisation=org.organisation).stripe_customer_id
    assert portal["return_url"] == "https://app.example.com/billing"
    # The customer made for the portal is the one checkout uses later.
    org.client().post(CHECKOUT, {"plan": "pro"}, format="json")
    assert len(stripe_stub.calls("POST", "/v1/customers")) == 1


@pytest.mark.parametrize(
    ("plan", "code"),
    [("free", "plan_not_purchasable"), ("enterprise", "plan_not_purchasable"), ("gold", "unknown_plan")],
)
def test_plans_without_a_price_cannot_be_bought(org, stripe_stub, priced, plan_limits, plan, code) -> None:
    plan_limits("enterprise", stripe_price_id="price_enterprise")  # priced but not public: sold by staff
    response = org.client().post(CHECKOUT, {"plan": plan}, format="json")
    assert error_of(response) == (400, code)
    assert stripe_stub.requests == []


def test_a_price_that_is_not_recurring_is_refused(org, stripe_stub, priced) -> None:
    stripe_stub.set_price("price_pro", recurring=False)
    assert error_of(org.client().post(CHECKOUT, {"plan": "pro"}, format="json")) == (400, "plan_not_purchasable")


def test_checkout_needs_a_plan(org, stripe_stub) -> None:
    assert error_of(org.client().post(CHECKOUT, {}, format="json")) == (400, "validation_error")


def test_billing_not_configured_is_503(org, settings) -> None:
    settings.STRIPE_SECRET_KEY = ""
    client = org.client()
    assert error_of(client.post(CHECKOUT, {"plan": "pro"}, format="json")) == (503, "billing_not_configured")
    assert error_of(client.post(PORTAL)) == (503, "billing_not_configured")


def test_billing_needs_the_admin_scope(make_organisation, stripe_stub, priced) -> None:
    keyed = make_organisation(scopes=["sync:read", "sync:write"])
    response = keyed.client().post(CHECKOUT, {"plan": "pro"}, format="json")
    assert error_of(response) == (403, "insufficient_scope")
    assert response.json()["error"]["details"]["required_scope"] == "admin"
    assert error_of(keyed.client().post(PORTAL)) == (403, "insufficient_scope")
    assert error_of(APIClient().post(PORTAL)) == (401, "authentication_required")
    assert stripe_stub.requests == []


def test_a_second_subscription_is_refused(org, stripe_stub, priced) -> None:
    BillingAccount.objects.create(
        organisation=org.organisation,
        stripe_customer_id="cus_existing",
        stripe_subscription_id="sub_existing",
        subscription_status="active",
    )
    response = org.client().post(CHECKOUT, {"plan": "business"}, format="json")
    assert error_of(response) == (409, "subscription_exists")
    assert stripe_stub.calls("POST", "/v1/checkout/sessions") == []


def test_stripe_unavailable_is_a_clear_502(org, stripe_stub, priced) -> None:
    stripe_stub.fail_next("POST", "/v1/checkout/sessions", status=503)
    assert error_of(org.client().post(CHECKOUT, {"plan": "pro"}, format="json")) == (502, "billing_provider_error")


def test_only_owners_use_the_services(org, stripe_stub, priced) -> None:
    owner, _ = user_get_or_create(email="owner@acme.test")
    admin, _ = user_get_or_create(email="admin@acme.test")
    membership_add(actor=CLI, organisation=org.organisation, user=owner, role="owner")
    membership_add(actor=CLI, organisation=org.organisation, user=admin, role="admin")

    url = checkout_session_create(actor=Actor.for_user(owner), organisation=org.organisation, plan_slug="pro")
    assert url.startswith("https://checkout.stripe.test/")
    assert stripe_stub.calls("POST", "/v1/customers")[0].form["email"] == "owner@acme.test"
    assert portal_session_create(actor=Actor.for_user(owner), organisation=org.organisation).startswith("https://")
    for call in (
        lambda: checkout_session_create(actor=Actor.for_user(admin), organisation=org.organisation, plan_slug="pro"),
        lambda: portal_session_create(actor=Actor.for_user(admin), organisation=org.organisation),
    ):
        with pytest.raises(Forbidden) as raised:
            call()
        assert raised.value.code == "owner_required"


def test_billing_endpoints_are_in_the_openapi_schema() -> None:
    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert "/api/v1/billing/checkout" in paths
    assert "/api/v1/billing/portal" in paths
    assert "/stripe/webhook" not in paths
