"""A local stand-in for the Stripe API, so billing tests never touch the network.

The ``stripe_stub`` fixture runs a ``ThreadingHTTPServer`` on 127.0.0.1 (random
port) answering Stripe-shaped JSON for the endpoints Outpost uses, records every
request (method, path, decoded form body, ``Idempotency-Key``), and points the
official library at itself through settings (``STRIPE_API_BASE``,
``STRIPE_SECRET_KEY``). Test modules import ``stripe_stub_fixture`` to use it.
Tests say what a subscription or price looks like (:meth:`StripeStub.set_subscription`)
and can make the next calls fail (:meth:`StripeStub.fail_next`). Like Stripe, a POST repeated with the same
``Idempotency-Key`` gets the first answer again without doing anything.

Also here: :func:`sign` and :func:`post_event`, which sign a webhook body with
the test secret exactly as Stripe does and post it to the webhook view.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

WEBHOOK_SECRET = "whsec_test_secret"
WEBHOOK_URL = "/stripe/webhook"


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None


@dataclass
class StripeStub:
    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: list[dict[str, Any]] = field(default_factory=list)
    _failures: list[tuple[str, str, int]] = field(default_factory=list)
    _idempotent: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests configure -------------------------------------------------------------------------------------

    def set_subscription(
        self,
        subscription_id: str,
        *,
        customer: str,
        status: str = "active",
        price: str = "price_pro",
        period_end: int | None = None,
        cancel_at_period_end: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The subscription ``subscriptions.retrieve`` answers from now on (the current API shape)."""
        period_end = period_end or int(time.time()) + 30 * 86400
        subscription = {
            "id": subscription_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at_period_end": cancel_at_period_end,
            "metadata": metadata or {},
            "livemode": False,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_{subscription_id}",
                        "object": "subscription_item",
                        "price": self._price(price),
                        "quantity": 1,
                        "current_period_start": period_end - 30 * 86400,
                        "current_period_end": period_end,
                    }
                ],
            },
        }
        self.subscriptions[subscription_id] = subscription
        return subscription

    def set_price(self, price_id: str, *, usage_type: str = "licensed", active: bool = True, recurring: bool = True):
        self.prices[price_id] = {
            "id": price_id,
            "object": "price",
            "active": active,
            "currency": "eur",
            "unit_amount": 4900,
            "type": "recurring" if recurring else "one_time",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": usage_type} if recurring else None,
        }

    def fail_next(self, method: str, path_prefix: str, *, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with a Stripe error of ``status``."""
        with self._lock:
            self._failures.extend([(method, path_prefix, status)] * times)

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # -- answering ------------------------------------------------------------------------------------------------

    def _price(self, price_id: str) -> dict[str, Any]:
        if price_id not in self.prices:
            self.set_price(price_id)
        return self.prices[price_id]

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def _failure_for(self, method: str, path: str) -> int | None:
        with self._lock:
            for index, (fail_method, prefix, status) in enumerate(self._failures):
                if fail_method == method and path.startswith(prefix):
                    del self._failures[index]
                    return status
        return None

    def handle(self, method: str, path: str, form: dict[str, str], idempotency_key: str | None) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(Recorded(method, path, form, idempotency_key))
            if method == "POST" and idempotency_key and idempotency_key in self._idempotent:
                return self._idempotent[idempotency_key]
        status = self._failure_for(method, path)
        if status is not None:
            return status, _error("api_error", "Stub failure.", code="stub_failure")
        answer = self._route(method, path, form)
        if method == "POST" and idempotency_key and answer[0] < 500:
            with self._lock:
                self._idempotent[idempotency_key] = answer
        return answer

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        if (method, path) == ("POST", "/v1/customers"):
            return 200, {
                "id": self._next_id("cus"),
                "object": "customer",
                "name": form.get("name"),
                "email": form.get("email"),
                "metadata": _sub_dict(form, "metadata"),
            }
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            session_id = self._next_id("cs_test")
            return 200, {
                "id": session_id,
                "object": "checkout.session",
                "mode": form.get("mode"),
                "customer": form.get("customer"),
                "client_reference_id": form.get("client_reference_id"),
                "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            }
        if (method, path) == ("POST", "/v1/billing_portal/sessions"):
            session_id = self._next_id("bps")
            return 200, {
                "id": session_id,
                "object": "billing_portal.session",
                "customer": form.get("customer"),
                "return_url": form.get("return_url"),
                "url": f"https://billing.stripe.test/p/session/{session_id}",
            }
        if (method, path) == ("POST", "/v1/billing/meter_events"):
            event = {
                "object": "billing.meter_event",
                "event_name": form.get("event_name"),
                "identifier": form.get("identifier"),
                "timestamp": int(form.get("timestamp") or 0),
                "payload": _sub_dict(form, "payload"),
                "livemode": False,
            }
            self.meter_events.append(event)
            return 200, event
        if method == "GET" and (match := re.fullmatch(r"/v1/subscriptions/([^/]+)", path)):
            subscription = self.subscriptions.get(match.group(1))
            if subscription is None:
                return 404, _error("invalid_request_error", "No such subscription.", code="resource_missing")
            return 200, subscription
        if method == "GET" and (match := re.fullmatch(r"/v1/prices/([^/]+)", path)):
            return 200, self._price(match.group(1))
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path}).")


def _error(kind: str, message: str, *, code: str = "") -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}


def _sub_dict(form: dict[str, str], name: str) -> dict[str, str]:
    prefix = f"{name}["
    return {key[len(prefix) : -1]: value for key, value in form.items() if key.startswith(prefix) and key.endswith("]")}


class _Handler(BaseHTTPRequestHandler):
    stub: StripeStub

    def _answer(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = dict(parse_qsl(body or parts.query, keep_blank_values=True))
        status, payload = self.stub.handle(self.command, parts.path, form, self.headers.get("Idempotency-Key"))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_{time.monotonic_ns()}")
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer  # noqa: N815 - the names http.server dispatches to
    do_POST = _answer  # noqa: N815
    do_DELETE = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(name="stripe_stub")
def stripe_stub_fixture(settings) -> Iterator[StripeStub]:
    """A running stub, with Outpost's Stripe settings pointing at it."""
    stub = StripeStub()
    handler = type("StubHandler", (_Handler,), {"stub": stub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    settings.STRIPE_API_BASE = stub.base_url
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sign(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


_event_ids = itertools.count(1)


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None) -> dict:
    """A Stripe event envelope around ``obj``."""
    return {
        "id": event_id or f"evt_test_{next(_event_ids):06d}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created or int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": obj},
    }


def post_event(client, payload: dict[str, Any] | str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    """POST a signed event to the webhook view, as Stripe does (raw JSON body)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body, secret=secret, timestamp=timestamp),
    )
