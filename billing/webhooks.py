"""The Stripe webhook endpoint (``POST /stripe/webhook``).

A plain Django view: no API key, no CSRF token, no DRF parsing. The signature
is checked by the official library on the exact raw body; then the event is
stored and queued (:func:`billing.stripe_events.stripe_event_record`) and
Stripe gets its 2xx at once. Processing happens in a Celery task.
"""

from __future__ import annotations

import json
import logging

import stripe
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from billing.stripe_events import stripe_event_record
from shared_apps.core.errors import json_error

logger = logging.getLogger("outpost.billing")


@csrf_exempt
@never_cache
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        return json_error(503, "billing_not_configured", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    try:
        stripe.Webhook.construct_event(
            request.body,
            request.headers.get("Stripe-Signature"),
            secret,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS,
        )
    except stripe.SignatureVerificationError as exc:
        logger.warning("stripe webhook refused: %s", exc)
        message = "The Stripe-Signature header does not verify."
        return json_error(400, "invalid_signature", message, {"reason": str(exc)})
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "invalid_payload", "The body is not a Stripe event.")
    payload = json.loads(request.body)
    if not isinstance(payload, dict) or not payload.get("id") or not payload.get("type"):
        return json_error(400, "invalid_payload", "The body is not a Stripe event.")
    event, created = stripe_event_record(payload=payload)
    return JsonResponse({"received": True, "id": event.stripe_id, "duplicate": not created})
