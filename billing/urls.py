"""Billing routes, mounted at the root URLconf: the API under ``api/v1/billing/`` and Stripe's webhook."""

from django.urls import path

from billing import apis, webhooks

urlpatterns = [
    path("api/v1/billing/checkout", apis.CheckoutApi.as_view(), name="billing-checkout"),
    path("api/v1/billing/portal", apis.PortalApi.as_view(), name="billing-portal"),
    path("stripe/webhook", webhooks.stripe_webhook, name="stripe-webhook"),
]
