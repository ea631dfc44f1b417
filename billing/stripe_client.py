"""The one way Outpost talks to Stripe, and the errors billing raises.

Every Stripe call goes through :func:`stripe_client` (so tests point the
official library at a local stub with ``STRIPE_API_BASE``) and, where a
failure must reach a user, through :func:`stripe_call`, which turns the
library's exceptions into Outpost errors with stable codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import stripe
from django.conf import settings

from shared_apps.core.errors import OutpostError

logger = logging.getLogger("outpost.billing")
T = TypeVar("T")


class BillingNotConfigured(OutpostError):
    status_code = 503
    code = "billing_not_configured"
    message = "Billing is not configured on this Outpost installation."


class BillingProviderError(OutpostError):
    """Stripe could not be reached or answered with an error we cannot fix by asking again differently."""

    status_code = 502
    code = "billing_provider_error"
    message = "The payment provider could not be reached. Try again shortly."

    def __init__(self, message: str | None = None, *, transient: bool = True, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.transient = transient


@lru_cache(maxsize=4)
def _client(secret_key: str, api_base: str, max_network_retries: int) -> stripe.StripeClient:
    # One client per configuration: it keeps its HTTP connection pool between calls.
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=max_network_retries,
    )


def billing_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    """The Stripe client for ``STRIPE_SECRET_KEY`` (and ``STRIPE_API_BASE`` when set)."""
    if not billing_configured():
        raise BillingNotConfigured(details={"missing": "STRIPE_SECRET_KEY"})
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_MAX_NETWORK_RETRIES)


def stripe_call(call: Callable[[], T], *, what: str) -> T:
    """Run one Stripe request; library errors become :class:`BillingProviderError`.

    Connection problems, rate limits and 5xx answers are ``transient`` (worth a
    retry); anything else (a bad price id, a deleted object) is not.
    """
    try:
        return call()
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        logger.warning("stripe %s failed (transient): %s", what, exc)
        raise BillingProviderError(details={"operation": what}) from exc
    except stripe.StripeError as exc:
        http_status = getattr(exc, "http_status", None)
        transient = http_status is not None and http_status >= 500
        logger.error("stripe %s failed: %s", what, exc)
        raise BillingProviderError(
            f"The payment provider refused the request ({what}).",
            details={"operation": what, "stripe_code": getattr(exc, "code", None) or ""},
            transient=transient,
        ) from exc


def billing_return_urls() -> dict[str, str]:
    """Where Stripe sends the browser back: the settings, else pages under ``OUTPOST_PUBLIC_URL``."""
    base = settings.OUTPOST_PUBLIC_URL.rstrip("/")
    return {
        "success": settings.BILLING_SUCCESS_URL
        or f"{base}/portal/billing/?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
        "cancel": settings.BILLING_CANCEL_URL or f"{base}/portal/billing/?checkout=cancelled",
        "portal_return": settings.BILLING_PORTAL_RETURN_URL or f"{base}/portal/billing/",
    }
