"""The dashboard and the provisioning progress page with its JSON status endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache

from billing.selectors import plan_limits
from shared_apps.apikeys.selectors import api_key_list
from shared_apps.portal import charts, selectors, services
from shared_apps.portal.access import org_view, page
from tenants.models import OrganisationStatus


@never_cache
@org_view("viewer", allow_provisioning=True)
def provisioning(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    if organisation.status != OrganisationStatus.PROVISIONING:
        return redirect("portal:dashboard", slug=organisation.slug)
    return page(
        request,
        "portal/provisioning.html",
        {
            "status_url": reverse("portal:status", args=[organisation.slug]),
            "next_url": reverse("portal:dashboard", args=[organisation.slug]),
        },
    )


@never_cache
@org_view("viewer", allow_provisioning=True)
def status(request: HttpRequest) -> JsonResponse:
    """Polled by the progress page every second."""
    organisation = request.organisation
    services.provisioning_nudge(organisation)
    return JsonResponse(
        {
            "status": organisation.status,
            "ready": organisation.status == OrganisationStatus.ACTIVE,
            "next": reverse("portal:dashboard", args=[organisation.slug]),
        }
    )


@org_view("viewer")
def dashboard(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    counts = selectors.tenant_counts(organisation=organisation)
    series = selectors.usage_series(organisation=organisation, days=30)
    today = series[-1] if series else {"pushes": 0, "pulls": 0, "mutations": 0}
    first_sync = counts.documents == 0 and counts.devices == 0 and not any(day["pushes"] for day in series)
    example_key = None
    if first_sync:
        example_key = next(
            (key for key in api_key_list(organisation=organisation, include_revoked=False) if key.is_active), None
        )
    return page(
        request,
        "portal/dashboard.html",
        {
            "counts": counts,
            "today": today,
            "chart": charts.usage_chart(series),
            "limits": selectors.limit_usage(organisation=organisation, counts=counts),
            "plan": plan_limits(slug=organisation.plan_id),
            "first_sync": first_sync,
            "example_key": example_key,
            "base_url": services.public_url(),
            "nav": "dashboard",
        },
    )
