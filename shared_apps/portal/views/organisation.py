"""Organisation administration: audit log, billing overview, settings and deletion."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing.checkout import checkout_session_create, portal_session_create
from billing.models import BillingAccount
from billing.selectors import plan_limits, plan_list
from billing.stripe_client import billing_configured
from billing.subscriptions import OPEN
from shared_apps.audit.services import Actor
from shared_apps.core.errors import OutpostError
from shared_apps.portal import forms, selectors, services
from shared_apps.portal.access import SESSION_ORGANISATION, org_view, page
from sync import services as sync_services
from tenant_apps.syncstore.models import SyncState
from tenants.context import tenant_context
from tenants.services import organisation_delete


@org_view("admin")
def audit(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    actions = selectors.audit_actions(organisation=organisation)
    action = request.GET.get("action", "")
    if action not in actions:
        action = ""
    events = selectors.audit_page(organisation=organisation, action=action, page=request.GET.get("page"))
    return page(request, "portal/audit.html", {"page": events, "actions": actions, "action": action, "nav": "audit"})


@org_view("owner")
def billing(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    counts = selectors.tenant_counts(organisation=organisation)
    series = selectors.usage_series(organisation=organisation, days=30)
    totals = {name: sum(int(day.get(name, 0)) for day in series) for name in ("pushes", "pulls", "mutations")}
    account = BillingAccount.objects.filter(organisation=organisation).first()
    checkout = request.GET.get("checkout")
    if checkout == "success":
        messages.success(request, "Thank you. Your plan changes as soon as Stripe confirms the payment.")
    elif checkout == "cancelled":
        messages.info(request, "Checkout was cancelled; nothing changed.")
    return page(
        request,
        "portal/billing.html",
        {
            "plan": plan_limits(slug=organisation.plan_id),
            "plans": plan_list(public_only=True),
            "limits": selectors.limit_usage(organisation=organisation, counts=counts),
            "totals": totals,
            "account": account,
            "subscribed": bool(account and account.stripe_subscription_id and account.subscription_status in OPEN),
            "billing_enabled": billing_configured(),
            "nav": "billing",
        },
    )


def _to_stripe(request: HttpRequest, start: Callable[[], str]) -> HttpResponse:
    """Send the browser to a Stripe-hosted page (a page that forwards, so the form's CSP ``form-action 'self'``
    does not block the cross-site redirect)."""
    try:
        url = start()
    except OutpostError as exc:
        messages.error(request, exc.message)
        return redirect("portal:billing", slug=request.organisation.slug)
    response = page(request, "portal/billing_redirect.html", {"url": url, "nav": "billing"})
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@org_view("owner")
def billing_checkout(request: HttpRequest) -> HttpResponse:
    """Buy a plan with Stripe Checkout (``billing.checkout.checkout_session_create``)."""
    plan_slug = request.POST.get("plan", "")
    return _to_stripe(
        request,
        lambda: checkout_session_create(
            actor=Actor.for_user(request.user), organisation=request.organisation, plan_slug=plan_slug
        ),
    )


@require_POST
@org_view("owner")
def billing_manage(request: HttpRequest) -> HttpResponse:
    """Open the Stripe customer portal (``billing.checkout.portal_session_create``)."""
    return _to_stripe(
        request,
        lambda: portal_session_create(actor=Actor.for_user(request.user), organisation=request.organisation),
    )


@login_required
def billing_return(request: HttpRequest) -> HttpResponse:
    """Where Stripe sends the browser back (``/portal/billing/``, see ``billing.stripe_client``): the current
    organisation's billing page, keeping the query (``checkout=success`` / ``cancelled``)."""
    current = request.session.get(SESSION_ORGANISATION)
    membership = next((m for m in selectors.memberships_for(user=request.user) if m.organisation_id == current), None)
    if membership is None:
        return redirect("portal:home")
    query = request.GET.urlencode()
    target = reverse("portal:billing", args=[membership.organisation.slug])
    return redirect(f"{target}?{query}" if query else target)


def _settings_page(
    request: HttpRequest,
    *,
    name_form: forms.OrganisationForm | None = None,
    sync_form: forms.SyncSettingsForm | None = None,
    delete_form: forms.DeleteOrganisationForm | None = None,
    status: int = 200,
) -> HttpResponse:
    organisation = request.organisation
    with tenant_context(organisation):
        strict = SyncState.objects.values_list("strict_collections", flat=True).get(pk=1)
    return page(
        request,
        "portal/settings.html",
        {
            "name_form": name_form or forms.OrganisationForm(initial={"name": organisation.name}),
            "sync_form": sync_form or forms.SyncSettingsForm(initial={"strict_collections": strict}),
            "delete_form": delete_form or forms.DeleteOrganisationForm(slug=organisation.slug),
            "nav": "settings",
        },
        status=status,
    )


@org_view("admin")
def settings_page(request: HttpRequest) -> HttpResponse:
    return _settings_page(request)


@require_POST
@org_view("admin")
def settings_name(request: HttpRequest) -> HttpResponse:
    form = forms.OrganisationForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, name_form=form, status=400)
    try:
        services.organisation_rename(
            actor=Actor.for_user(request.user), organisation=request.organisation, name=form.cleaned_data["name"]
        )
    except OutpostError as exc:
        form.add_error("name", exc.message)
        return _settings_page(request, name_form=form, status=exc.status_code)
    messages.success(request, "The organisation's name was saved.")
    return redirect("portal:settings", slug=request.organisation.slug)


@require_POST
@org_view("admin")
def settings_sync(request: HttpRequest) -> HttpResponse:
    form = forms.SyncSettingsForm(request.POST)
    form.is_valid()  # a single optional checkbox: always valid
    organisation = request.organisation
    with tenant_context(organisation):
        sync_services.sync_settings_update(
            actor=Actor.for_user(request.user),
            organisation=organisation,
            strict_collections=form.cleaned_data["strict_collections"],
        )
    messages.success(request, "Sync settings were saved.")
    return redirect("portal:settings", slug=organisation.slug)


@require_POST
@org_view("owner")
def delete(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    form = forms.DeleteOrganisationForm(request.POST, slug=organisation.slug)
    if not form.is_valid():
        return _settings_page(request, delete_form=form, status=400)
    organisation_delete(actor=Actor.for_user(request.user), organisation=organisation, confirm=True)
    if request.session.get(SESSION_ORGANISATION) == organisation.pk:
        del request.session[SESSION_ORGANISATION]
    messages.success(request, f"{organisation.name} and all its data were deleted.")
    return redirect("portal:home")
