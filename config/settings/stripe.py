"""Stripe billing: API keys, webhook secret, grace period and the Checkout/portal return URLs.

Billing is optional: with ``STRIPE_SECRET_KEY`` empty, checkout and portal
answer ``503 billing_not_configured`` (and the webhook does the same while
``STRIPE_WEBHOOK_SECRET`` is empty); everything else keeps working.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", str, "")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", str, "")
# Another API host (stripe-mock, the test suite's local stub); empty means api.stripe.com.
STRIPE_API_BASE = env("STRIPE_API_BASE", str, "")
# Retries of idempotent-safe failures inside stripe-python (it sends an Idempotency-Key with every POST).
STRIPE_MAX_NETWORK_RETRIES = env("STRIPE_MAX_NETWORK_RETRIES", int, 2)
# Signed webhook timestamps older than this are refused (Stripe's own default).
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env("STRIPE_WEBHOOK_TOLERANCE_SECONDS", int, 300)

# How long a past_due subscription keeps its plan before the organisation drops to free.
BILLING_GRACE_DAYS = env("BILLING_GRACE_DAYS", int, 7)
if BILLING_GRACE_DAYS < 0:
    raise ImproperlyConfigured("The BILLING_GRACE_DAYS environment variable must be 0 or more.")

# Where Stripe sends the browser back. Empty means a page under OUTPOST_PUBLIC_URL
# (see billing.stripe_client.billing_return_urls), resolved when used so that
# OUTPOST_PUBLIC_URL stays the one place the public address is configured.
BILLING_SUCCESS_URL = env("BILLING_SUCCESS_URL", str, "")
BILLING_CANCEL_URL = env("BILLING_CANCEL_URL", str, "")
BILLING_PORTAL_RETURN_URL = env("BILLING_PORTAL_RETURN_URL", str, "")
