"""Platform admin for plans and billing records."""

from __future__ import annotations

import pytest
from django.urls import reverse

from billing.models import BillingAccount, Plan, StripeEvent, UsageDaily, UsageReport
from shared_apps.accounts.models import User
from shared_apps.audit.models import AuditEvent
from tests.billing.stripe_stub import stripe_stub_fixture  # noqa: F401 - provides the stripe_stub fixture


@pytest.fixture
def staff_client(client, db):
    user = User.objects.create_superuser("staff@outpost.test", "a-long-password-1")
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", [Plan, BillingAccount, StripeEvent, UsageDaily, UsageReport])
def test_billing_models_are_listed(staff_client, org, model) -> None:
    BillingAccount.objects.create(organisation=org.organisation, stripe_customer_id="cus_acme")
    StripeEvent.objects.create(stripe_id="evt_1", type="invoice.paid", payload={"id": "evt_1"})
    url = reverse(f"admin:billing_{model._meta.model_name}_changelist")
    assert staff_client.get(url).status_code == 200
    assert staff_client.get(url, {"q": "acme"}).status_code == 200


def test_records_are_read_only(staff_client, org) -> None:
    account = BillingAccount.objects.create(organisation=org.organisation, stripe_customer_id="cus_acme")
    assert staff_client.get(reverse("admin:billing_billingaccount_add")).status_code == 403
    response = staff_client.post(
        reverse("admin:billing_billingaccount_change", args=[account.pk]), {"stripe_customer_id": "cus_other"}
    )
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.stripe_customer_id == "cus_acme"


def test_editing_a_plan_in_the_admin_is_audited(staff_client, plan_limits) -> None:
    plan_limits("pro")
    plan = Plan.objects.get(slug="pro")
    url = reverse("admin:billing_plan_change", args=[plan.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {name: ("" if value is None else value) for name, value in form.initial.items() if name in form.fields}
    data["is_public"] = "on" if plan.is_public else ""
    data.update(stripe_price_id="price_pro_2026", max_devices=2000)
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    plan.refresh_from_db()
    assert (plan.stripe_price_id, plan.max_devices) == ("price_pro_2026", 2000)
    audit = AuditEvent.objects.get(action="plan.updated", target_id="pro")
    assert audit.actor_label == "staff:staff@outpost.test"
    assert audit.details["after"]["stripe_price_id"] == "price_pro_2026"


def test_staff_can_resync_a_subscription(staff_client, org, plan_limits, stripe_stub) -> None:
    plan_limits("pro", stripe_price_id="price_pro")
    account = BillingAccount.objects.create(
        organisation=org.organisation, stripe_customer_id="cus_acme", stripe_subscription_id="sub_1"
    )
    stripe_stub.set_subscription("sub_1", customer="cus_acme", price="price_pro")
    response = staff_client.post(
        reverse("admin:billing_billingaccount_changelist"),
        {"action": "resync_from_stripe", "_selected_action": [account.pk]},
    )
    assert response.status_code == 302
    org.organisation.refresh_from_db()
    assert org.organisation.plan_id == "pro"
    assert AuditEvent.objects.get(action="organisation.plan_changed").actor_label == "staff:staff@outpost.test"
