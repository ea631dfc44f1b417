"""Billing API: start a Checkout or open the customer portal (API keys with the ``admin`` scope)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.checkout import checkout_session_create, portal_session_create
from shared_apps.apikeys.authentication import ApiKeyPrincipal
from shared_apps.audit.services import Actor
from tenants.models import Organisation

_error = inline_serializer(
    "BillingError",
    {
        "error": inline_serializer(
            "BillingErrorBody",
            {"code": serializers.CharField(), "message": serializers.CharField(), "details": serializers.JSONField()},
        )
    },
)
_errors = {400: _error, 401: _error, 403: _error, 409: _error, 502: _error, 503: _error}
_url = inline_serializer("BillingRedirect", {"url": serializers.URLField()})


def _caller(request: Request) -> tuple[Actor, Organisation]:
    principal: ApiKeyPrincipal = request.auth
    organisation = Organisation.all_objects.get(pk=principal.organisation.id)
    return Actor(label=f"api_key:{principal.key_prefix}"), organisation


class CheckoutApi(APIView):
    """Start a Stripe Checkout for a plan; send the customer's browser to the returned URL."""

    required_scope = "admin"

    class InputSerializer(serializers.Serializer):
        plan = serializers.SlugField(max_length=50)

    @extend_schema(operation_id="billing_checkout", request=InputSerializer, responses={200: _url, **_errors})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actor, organisation = _caller(request)
        plan_slug = serializer.validated_data["plan"]
        return Response({"url": checkout_session_create(actor=actor, organisation=organisation, plan_slug=plan_slug)})


class PortalApi(APIView):
    """Open the Stripe customer portal (change plan, payment method, invoices, cancellation)."""

    required_scope = "admin"

    @extend_schema(operation_id="billing_portal", request=None, responses={200: _url, **_errors})
    def post(self, request: Request) -> Response:
        actor, organisation = _caller(request)
        return Response({"url": portal_session_create(actor=actor, organisation=organisation)})
