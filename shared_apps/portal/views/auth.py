"""Pages outside any organisation: sign-up and verification, log-in and passwords, invitations, switching."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.ratelimit import client_address
from shared_apps.accounts.models import User
from shared_apps.accounts.services import invite_accept, invite_find
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import OutpostError, RateLimited
from shared_apps.portal import forms, ratelimit, selectors, services
from shared_apps.portal.access import SESSION_ORGANISATION, not_found, page, remember_organisation
from tenants.models import OrganisationStatus

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
SESSION_SIGNUP_EMAIL = "portal_signup_email"


def home(request: HttpRequest) -> HttpResponse:
    """Signed in: the current organisation's dashboard (or the way to create one). Otherwise: log in."""
    if not request.user.is_authenticated:
        return redirect("portal:login")
    memberships = selectors.memberships_for(user=request.user)
    if not memberships:
        return page(request, "portal/organisation_new.html", {"form": forms.OrganisationForm(), "first": True})
    current = request.session.get(SESSION_ORGANISATION)
    membership = next((m for m in memberships if m.organisation_id == current), memberships[0])
    return redirect("portal:dashboard", slug=membership.organisation.slug)


@require_POST
@login_required
def switch(request: HttpRequest) -> HttpResponse:
    membership = selectors.membership_for(user=request.user, slug=request.POST.get("organisation", ""))
    if membership is None:
        return not_found(request)
    remember_organisation(request, membership.organisation_id)
    return redirect("portal:dashboard", slug=membership.organisation.slug)


@login_required
def organisation_new(request: HttpRequest) -> HttpResponse:
    form = forms.OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        allowed = ratelimit.counter_hit(
            f"neworg:user:{request.user.pk}",
            limit=settings.PORTAL_SIGNUP_LIMIT_PER_IP,
            window_seconds=settings.PORTAL_SIGNUP_WINDOW_SECONDS,
        )
        if not allowed:
            form.add_error(None, "You have created many organisations recently; try again later.")
        else:
            try:
                organisation = services.organisation_start(user=request.user, name=form.cleaned_data["name"])
            except OutpostError as exc:
                form.add_error("name", exc.message)
            else:
                remember_organisation(request, organisation.pk)
                return redirect("portal:provisioning", slug=organisation.slug)
    first = not selectors.memberships_for(user=request.user)
    return page(request, "portal/organisation_new.html", {"form": form, "first": first})


# --- Sign-up --------------------------------------------------------------------------


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("portal:organisation-new")
    form = forms.SignupForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.signup_start(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                organisation_name=form.cleaned_data["organisation_name"],
                client_ip=client_address(request.META),
                base_url=services.public_url(),
            )
        except RateLimited as exc:
            form.add_error(None, exc.message)
            status = 429
        except OutpostError as exc:
            form.add_error(None, exc.message)
            status = 400
        else:
            request.session[SESSION_SIGNUP_EMAIL] = form.cleaned_data["email"]
            return redirect("portal:signup-sent")
    elif request.method == "POST":
        status = 400
    return page(request, "portal/signup.html", {"form": form}, status=status)


def signup_sent(request: HttpRequest) -> HttpResponse:
    return page(request, "portal/signup_sent.html", {"email": request.session.get(SESSION_SIGNUP_EMAIL, "")})


def signup_verify(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what will happen; POST verifies (link scanners that fetch e-mailed links change nothing)."""
    try:
        signup_id = services.signup_id_from_token(token)
    except OutpostError as exc:
        return page(request, "portal/signup_verify.html", {"error": exc.message}, status=400)
    signup_row = selectors.signup_get(signup_id=signup_id)
    if signup_row is None:
        return page(request, "portal/signup_verify.html", {"error": "This verification link is not valid."}, status=400)
    if signup_row.verified_at is not None:
        return page(request, "portal/signup_verify.html", {"signup": signup_row, "used": True})
    if request.method == "POST":
        try:
            user, organisation = services.signup_complete(signup_id=signup_id)
        except OutpostError as exc:
            return page(request, "portal/signup_verify.html", {"error": exc.message}, status=409)
        login(request, user, backend=MODEL_BACKEND)
        remember_organisation(request, organisation.pk)
        request.session.pop(SESSION_SIGNUP_EMAIL, None)
        return redirect("portal:provisioning", slug=organisation.slug)
    return page(request, "portal/signup_verify.html", {"signup": signup_row})


# --- Log-in and passwords -----------------------------------------------------------------

login_view = auth_views.LoginView.as_view(
    template_name="portal/login.html", authentication_form=forms.LoginForm, redirect_authenticated_user=True
)
logout_view = auth_views.LogoutView.as_view()


class PasswordResetView(auth_views.PasswordResetView):
    form_class = forms.PasswordResetForm
    template_name = "portal/password_reset.html"
    email_template_name = "portal/emails/password_reset.txt"
    subject_template_name = "portal/emails/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")

    def form_valid(self, form: Any) -> HttpResponse:
        # Links use the configured public address, not the request's Host header.
        self.extra_email_context = {"base_url": services.public_url()}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = forms.SetPasswordForm
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password-reset-complete")

    def form_valid(self, form: Any) -> HttpResponse:
        with transaction.atomic():
            response = super().form_valid(form)
            user: User = form.user
            if user.email_verified_at is None:
                # The reset link came through that inbox.
                user.email_verified_at = timezone.now()
                user.save(update_fields=["email_verified_at"])
            audit_record(
                actor=Actor.for_user(user), action="user.password_reset", target_type="user", target_id=user.email
            )
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = forms.PasswordChangeForm
    template_name = "portal/password_change.html"
    success_url = reverse_lazy("portal:home")

    def form_valid(self, form: Any) -> HttpResponse:
        with transaction.atomic():
            response = super().form_valid(form)
            audit_record(
                actor=Actor.for_user(form.user),
                action="user.password_changed",
                target_type="user",
                target_id=form.user.email,
            )
        messages.success(self.request, "Your password was changed.")
        return response


password_reset = PasswordResetView.as_view()
password_reset_done = auth_views.PasswordResetDoneView.as_view(template_name="portal/password_reset_done.html")
password_reset_confirm = PasswordResetConfirmView.as_view()
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="portal/password_reset_complete.html"
)
password_change = PasswordChangeView.as_view()


# --- Invitations --------------------------------------------------------------------------------


def invite(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation: signed in with the invited address, or signing up with it here."""
    found = invite_find(token=token)
    context: dict[str, Any] = {"invite": found, "token": token}
    if found is None or found.withdrawn_at is not None:
        return page(request, "portal/invite.html", {**context, "problem": "invalid"}, status=404)
    if found.accepted_at is not None:
        return page(request, "portal/invite.html", {**context, "problem": "accepted"}, status=410)
    if found.expires_at <= timezone.now():
        return page(request, "portal/invite.html", {**context, "problem": "expired"}, status=410)
    if found.organisation.status != OrganisationStatus.ACTIVE:
        return page(request, "portal/invite.html", {**context, "problem": "inactive"}, status=410)
    user = request.user
    if user.is_authenticated:
        if user.email.lower() != found.email.lower():
            return page(request, "portal/invite.html", {**context, "problem": "other_user"}, status=403)
        if request.method == "POST":
            try:
                membership = invite_accept(user=user, token=token)
            except OutpostError as exc:
                messages.error(request, exc.message)
                return redirect("portal:invite", token=token)
            return _joined(request, membership)
        return page(request, "portal/invite.html", {**context, "action": "accept"})
    if selectors.account_exists(email=found.email):
        login_url = f"{reverse('portal:login')}?next={reverse('portal:invite', args=[token])}"
        return page(request, "portal/invite.html", {**context, "action": "login", "login_url": login_url})
    form = forms.InviteSignupForm(request.POST or None, email=found.email)
    if request.method == "POST" and form.is_valid():
        try:
            membership = services.invite_signup(
                token=token,
                email=found.email,
                password=form.cleaned_data["password"],
                full_name=form.cleaned_data["full_name"],
            )
        except OutpostError as exc:
            form.add_error(None, exc.message)
        else:
            login(request, membership.user, backend=MODEL_BACKEND)
            return _joined(request, membership)
    return page(request, "portal/invite.html", {**context, "action": "signup", "form": form})


def _joined(request: HttpRequest, membership: Any) -> HttpResponse:
    remember_organisation(request, membership.organisation_id)
    messages.success(request, f"You joined {membership.organisation.name} as {membership.role}.")
    return redirect("portal:dashboard", slug=membership.organisation.slug)
