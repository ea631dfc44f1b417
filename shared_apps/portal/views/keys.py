"""API keys: list, create (the secret is shown once), revoke, roll."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from shared_apps.apikeys import keys as key_strings
from shared_apps.apikeys.models import ApiKey
from shared_apps.apikeys.selectors import api_key_get, api_key_list
from shared_apps.apikeys.services import api_key_revoke
from shared_apps.audit.services import Actor
from shared_apps.core.errors import OutpostError
from shared_apps.portal import forms, services
from shared_apps.portal.access import can, not_found, org_view, page


def _keys_page(
    request: HttpRequest,
    form: forms.ApiKeyCreateForm,
    *,
    created: tuple[ApiKey, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    organisation = request.organisation
    response = page(
        request,
        "portal/keys.html",
        {
            "keys": list(api_key_list(organisation=organisation)),
            "form": form,
            "roll_form": forms.ApiKeyRollForm(initial={"grace_seconds": 86400}),
            "created": created[0] if created else None,
            "secret": created[1] if created else None,
            "scope_help": forms.SCOPE_HELP,
            "can_admin_scope": can(request.membership, "manage_admin_keys"),
            "now": timezone.now(),
            "nav": "keys",
        },
        status=status,
    )
    if created:
        # The page holds a secret: keep it out of every cache and out of the back/forward cache's disk copy.
        response["Cache-Control"] = "no-store"
    return response


def _key_or_none(request: HttpRequest, prefix: str) -> ApiKey | None:
    api_key = api_key_get(prefix=key_strings.normalise_prefix(prefix))
    if api_key is None or api_key.organisation_id != request.organisation.pk:
        return None
    return api_key


@org_view("viewer", post="developer")
def keys(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _keys_page(request, forms.ApiKeyCreateForm())
    form = forms.ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, form, status=400)
    delta = form.expires_delta()
    try:
        created = services.key_create(
            actor=Actor.for_user(request.user),
            by=request.membership,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=timezone.now() + delta if delta else None,
        )
    except OutpostError as exc:
        form.add_error(None, exc.message)
        return _keys_page(request, form, status=exc.status_code)
    return _keys_page(request, forms.ApiKeyCreateForm(), created=created)


@require_POST
@org_view("developer")
def key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    api_key = _key_or_none(request, prefix)
    if api_key is None:
        return not_found(request)
    api_key_revoke(actor=Actor.for_user(request.user), api_key=api_key)
    messages.success(request, f"Key {api_key.display_prefix} ({api_key.name}) is revoked; it stops working now.")
    return redirect("portal:keys", slug=request.organisation.slug)


@require_POST
@org_view("developer")
def key_roll(request: HttpRequest, prefix: str) -> HttpResponse:
    api_key = _key_or_none(request, prefix)
    if api_key is None:
        return not_found(request)
    form = forms.ApiKeyRollForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose when the old key stops working.")
        return redirect("portal:keys", slug=request.organisation.slug)
    try:
        created = services.api_key_roll(
            actor=Actor.for_user(request.user),
            by=request.membership,
            api_key=api_key,
            grace=timedelta(seconds=form.cleaned_data["grace_seconds"]),
        )
    except OutpostError as exc:
        messages.error(request, exc.message)
        return redirect("portal:keys", slug=request.organisation.slug)
    messages.success(request, f"Key {api_key.display_prefix} was rolled.")
    return _keys_page(request, forms.ApiKeyCreateForm(), created=created)
