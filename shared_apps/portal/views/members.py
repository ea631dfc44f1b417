"""Members and invitations: invite, resend, withdraw, change roles, remove, leave, transfer ownership."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from shared_apps.accounts.models import MembershipRole
from shared_apps.audit.services import Actor
from shared_apps.core.errors import OutpostError
from shared_apps.portal import forms, selectors, services
from shared_apps.portal.access import SESSION_ORGANISATION, can, not_found, org_view, page


def _back(request: HttpRequest) -> HttpResponse:
    return redirect("portal:members", slug=request.organisation.slug)


def _role_choices(request: HttpRequest) -> list[tuple[str, str]]:
    return [
        (value, label)
        for value, label in forms.ROLE_CHOICES
        if value != MembershipRole.OWNER or can(request.membership, "manage_owners")
    ]


@org_view("viewer", post="admin")
def members(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    form = forms.InviteForm(request.POST or None)
    form.fields["role"].choices = _role_choices(request)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                invite = services.invite_send(
                    actor=Actor.for_user(request.user),
                    by=request.membership,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    base_url=services.public_url(),
                )
            except OutpostError as exc:
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                messages.success(request, f"Invitation sent to {invite.email}.")
                return _back(request)
        else:
            status = 400
    member_rows = selectors.member_list(organisation=organisation)
    return page(
        request,
        "portal/members.html",
        {
            "members": member_rows,
            "invites": selectors.invite_list(organisation=organisation),
            "form": form,
            "role_choices": _role_choices(request),
            "transfer_candidates": [m for m in member_rows if m.pk != request.membership.pk],
            "nav": "members",
        },
        status=status,
    )


def _member_or_none(request: HttpRequest, membership_id: int):
    return selectors.member_get(organisation=request.organisation, membership_id=membership_id)


@require_POST
@org_view("admin")
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _member_or_none(request, membership_id)
    if membership is None:
        return not_found(request)
    form = forms.RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role.")
        return _back(request)
    return _flash(
        request,
        lambda: services.member_change_role(
            actor=Actor.for_user(request.user),
            by=request.membership,
            membership=membership,
            role=form.cleaned_data["role"],
        ),
        f"{membership.user.email} is now {form.cleaned_data['role']}.",
    )


@require_POST
@org_view("admin")
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = _member_or_none(request, membership_id)
    if membership is None:
        return not_found(request)
    if membership.pk == request.membership.pk:
        return _leave(request)
    return _flash(
        request,
        lambda: services.member_remove(
            actor=Actor.for_user(request.user), by=request.membership, membership=membership
        ),
        f"{membership.user.email} was removed.",
    )


@require_POST
@org_view("viewer")
def member_leave(request: HttpRequest) -> HttpResponse:
    return _leave(request)


def _flash(request: HttpRequest, action: Callable[[], object], success: str) -> HttpResponse:
    """Run one service call; show its error, or ``success``; back to the members page."""
    try:
        action()
    except OutpostError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return _back(request)


def _leave(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    try:
        services.member_remove(actor=Actor.for_user(request.user), by=request.membership, membership=request.membership)
    except OutpostError as exc:
        messages.error(request, exc.message)
        return _back(request)
    if request.session.get(SESSION_ORGANISATION) == organisation.pk:
        del request.session[SESSION_ORGANISATION]
    messages.success(request, f"You left {organisation.name}.")
    return redirect("portal:home")


@require_POST
@org_view("owner")
def ownership_transfer(request: HttpRequest) -> HttpResponse:
    form = forms.TransferForm(request.POST)
    target = _member_or_none(request, form.cleaned_data["membership_id"]) if form.is_valid() else None
    if target is None:
        messages.error(request, "Choose a member of this organisation.")
        return _back(request)
    return _flash(
        request,
        lambda: services.ownership_transfer(actor=Actor.for_user(request.user), by=request.membership, to=target),
        f"{target.user.email} is now an owner; you are an admin.",
    )


def _invite_or_none(request: HttpRequest, invite_id: int):
    return selectors.invite_get(organisation=request.organisation, invite_id=invite_id)


@require_POST
@org_view("admin")
def invite_resend(request: HttpRequest, invite_id: int) -> HttpResponse:
    invite = _invite_or_none(request, invite_id)
    if invite is None:
        return not_found(request)
    return _flash(
        request,
        lambda: services.invite_send_again(
            actor=Actor.for_user(request.user), by=request.membership, invite=invite, base_url=services.public_url()
        ),
        f"A new invitation link was sent to {invite.email}; the old link no longer works.",
    )


@require_POST
@org_view("admin")
def invite_withdraw(request: HttpRequest, invite_id: int) -> HttpResponse:
    invite = _invite_or_none(request, invite_id)
    if invite is None:
        return not_found(request)
    return _flash(
        request,
        lambda: services.invite_cancel(actor=Actor.for_user(request.user), by=request.membership, invite=invite),
        f"The invitation of {invite.email} was withdrawn.",
    )
