"""Who may see and do what in the portal: one decorator for every organisation page.

Roles are ranked (viewer < developer < admin < owner, each including the ones
below). A page declares the role it needs to be read and, where it accepts
POSTs, the role needed to change something:

* viewer: reads everything except the audit log, billing and settings;
* developer: manages API keys (except ``admin``-scoped ones) and data
  (resolves conflicts, revokes devices);
* admin: manages members and invitations, collections' policies, settings;
  reads the audit log;
* owner: billing, ownership transfer, deleting the organisation.

Someone who is not a member of the organisation in the URL gets the same 404
as for an organisation that does not exist, so slugs cannot be probed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from shared_apps.accounts.models import ROLE_RANK, Membership
from shared_apps.portal import selectors
from tenants.models import OrganisationStatus

Role = Literal["viewer", "developer", "admin", "owner"]
SESSION_ORGANISATION = "portal_organisation_id"

# What each role may do, for templates (buttons and navigation) and for views.
ABILITIES: dict[str, Role] = {
    "read": "viewer",
    "manage_keys": "developer",
    "manage_admin_keys": "admin",
    "manage_data": "developer",
    "manage_collections": "admin",
    "manage_members": "admin",
    "manage_settings": "admin",
    "read_audit": "admin",
    "manage_billing": "owner",
    "manage_owners": "owner",
    "delete_organisation": "owner",
}


def abilities_of(membership: Membership | None) -> dict[str, bool]:
    if membership is None:
        return dict.fromkeys(ABILITIES, False)
    return {name: membership.has_role(role) for name, role in ABILITIES.items()}


def can(membership: Membership, ability: str) -> bool:
    return membership.has_role(ABILITIES[ability])


def remember_organisation(request: HttpRequest, organisation_id: int) -> None:
    if request.session.get(SESSION_ORGANISATION) != organisation_id:
        request.session[SESSION_ORGANISATION] = organisation_id


def page(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HttpResponse:
    """Render a portal page with the header's context (organisation, role, switcher)."""
    membership: Membership | None = getattr(request, "membership", None)
    user = request.user
    full = {
        "organisation": membership.organisation if membership else None,
        "membership": membership,
        "can": abilities_of(membership),
        "switcher": selectors.memberships_for(user=user) if user.is_authenticated else [],
        **(context or {}),
    }
    return render(request, template, full, status=status)


def not_found(request: HttpRequest) -> HttpResponse:
    request.membership = None  # type: ignore[attr-defined]
    return page(request, "portal/404.html", status=404)


def forbidden(request: HttpRequest, required: str) -> HttpResponse:
    return page(request, "portal/403.html", {"required_role": required}, status=403)


def org_view(
    role: Role, *, post: Role | None = None, allow_provisioning: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Guard an organisation page (URL argument ``slug``).

    ``role`` is needed for any request, ``post`` (when given) for POSTs. The
    view receives the request with ``request.membership`` and
    ``request.organisation`` set, and without ``slug``.
    """
    if role not in ROLE_RANK or (post is not None and post not in ROLE_RANK):
        raise ValueError(f"unknown role in org_view({role!r}, post={post!r})")

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        @login_required
        def wrapper(request: HttpRequest, slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = selectors.membership_for(user=request.user, slug=slug)
            if membership is None:
                return not_found(request)
            request.membership = membership  # type: ignore[attr-defined]
            request.organisation = membership.organisation  # type: ignore[attr-defined]
            required = post if post is not None and request.method == "POST" else role
            if not membership.has_role(required):
                return forbidden(request, required)
            organisation = membership.organisation
            if organisation.status == OrganisationStatus.PROVISIONING and not allow_provisioning:
                return redirect("portal:provisioning", slug=organisation.slug)
            remember_organisation(request, organisation.pk)
            return view(request, *args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        wrapper.required_post_role = post or role  # type: ignore[attr-defined]
        return wrapper

    return decorator
