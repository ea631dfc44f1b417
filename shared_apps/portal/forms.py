"""Portal forms: input validation only; the views call services with the cleaned data."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from billing.ratelimit import client_address
from shared_apps.accounts.models import MembershipRole, User
from shared_apps.apikeys.models import SCOPES
from shared_apps.portal import ratelimit
from tenant_apps.syncstore.models import ConflictPolicy

ROLE_CHOICES = [(role.value, role.label) for role in MembershipRole]
EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]
GRACE_CHOICES = [
    ("0", "Immediately"),
    ("3600", "After 1 hour"),
    ("86400", "After 24 hours"),
    ("604800", "After 7 days"),
]
SCOPE_HELP = {
    "sync:read": "pull changes, read collections, documents, conflicts and devices",
    "sync:write": "push changes and resolve conflicts",
    "admin": "everything, including sync settings and revoking devices",
}


class PortalForm(forms.Form):
    """Labels without Django's trailing colon (the pages style labels themselves)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class NoColonMixin:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]


class PasswordField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strip", False)
        kwargs.setdefault("widget", forms.PasswordInput(attrs={"autocomplete": "new-password"}))
        super().__init__(**kwargs)


class SignupForm(PortalForm):
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = PasswordField(label="Password", help_text="At least 10 characters, not a common password.")
    organisation_name = forms.CharField(max_length=200, label="Organisation name")

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            try:
                validate_password(password, user=User(email=cleaned.get("email", "")))
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class InviteSignupForm(PortalForm):
    """An invitee without an account sets a password (the address is the invited one)."""

    full_name = forms.CharField(max_length=200, required=False, label="Your name")
    password = PasswordField(label="Choose a password", help_text="At least 10 characters, not a common password.")

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        self.email = email
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password, user=User(email=self.email))
        return password


class LoginForm(NoColonMixin, auth_forms.AuthenticationForm):
    """Django's log-in form with e-mail addresses matched in lower case and attempts rate limited."""

    username = forms.EmailField(
        label="E-mail", max_length=254, widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": "That e-mail address and password do not match an account.",
        "rate_limited": "Too many log-in attempts. Wait a few minutes and try again.",
    }

    def clean(self) -> dict[str, Any]:
        username = (self.cleaned_data.get("username") or "").strip().lower()
        if username:
            self.cleaned_data["username"] = username
            allowed = ratelimit.hits_allowed(
                [
                    (f"login:ip:{client_address(self.request.META)}", settings.PORTAL_LOGIN_LIMIT_PER_IP),
                    (f"login:email:{ratelimit.email_digest(username)}", settings.PORTAL_LOGIN_LIMIT_PER_EMAIL),
                ],
                window_seconds=settings.PORTAL_LOGIN_WINDOW_SECONDS,
            )
            if not allowed:
                raise ValidationError(self.error_messages["rate_limited"], code="rate_limited")
        return super().clean()


class PasswordResetForm(NoColonMixin, auth_forms.PasswordResetForm):
    """Also lets accounts without a password (made by the CLI or an invitation) set one, and limits e-mails."""

    def get_users(self, email: str) -> Any:
        return (
            user
            for user in User.objects.filter(email__iexact=email.strip(), is_active=True)
            if auth_forms._unicode_ci_compare(email, user.email)
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        email = self.cleaned_data["email"]
        request = kwargs.get("request")
        counters = [(f"reset:email:{ratelimit.email_digest(email)}", settings.PORTAL_PASSWORD_RESET_LIMIT_PER_EMAIL)]
        if request is not None:
            counters.append((f"reset:ip:{client_address(request.META)}", settings.PORTAL_SIGNUP_LIMIT_PER_IP))
        # Over the limit nothing is sent, and the page says the same as always (no enumeration, no mail bombing).
        if ratelimit.hits_allowed(counters, window_seconds=settings.PORTAL_SIGNUP_WINDOW_SECONDS):
            super().save(*args, **kwargs)


class OrganisationForm(PortalForm):
    name = forms.CharField(max_length=200, label="Organisation name")


class ApiKeyCreateForm(PortalForm):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        initial=["sync:read", "sync:write"],
    )
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires")

    def expires_delta(self) -> timedelta | None:
        value = self.cleaned_data.get("expires_in_days")
        return timedelta(days=int(value)) if value else None


class ApiKeyRollForm(PortalForm):
    grace_seconds = forms.TypedChoiceField(choices=GRACE_CHOICES, coerce=int, label="Old key stops working")


class InviteForm(PortalForm):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=MembershipRole.DEVELOPER)


class RoleForm(PortalForm):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class TransferForm(PortalForm):
    membership_id = forms.IntegerField(label="New owner")


def parse_json_text(raw: str, *, allow_empty: bool, what: str) -> Any:
    """JSON typed into a textarea; ``None`` for an empty box when allowed."""
    raw = (raw or "").strip()
    if not raw:
        if allow_empty:
            return None
        raise ValidationError(f"Enter the {what} as JSON.")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"The {what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from exc


class CollectionForm(PortalForm):
    conflict_policy = forms.ChoiceField(choices=ConflictPolicy.choices)
    json_schema = forms.CharField(
        required=False,
        label="JSON Schema",
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"}),
        help_text="Documents must validate against it (draft 2020-12). Leave empty for no schema.",
    )

    def clean_json_schema(self) -> Any:
        schema = parse_json_text(self.cleaned_data.get("json_schema", ""), allow_empty=True, what="JSON Schema")
        if schema is not None and not isinstance(schema, dict):
            raise ValidationError("A JSON Schema is a JSON object.")
        return schema


class ConflictResolveForm(PortalForm):
    choose = forms.ChoiceField(
        choices=[
            ("server", "Keep the server's version"),
            ("client", "Take the losing write"),
            ("merged", "Save the merged JSON below"),
        ],
        widget=forms.RadioSelect,
    )
    data = forms.CharField(
        required=False,
        label="Merged document",
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("choose") == "merged":
            try:
                data = parse_json_text(cleaned.get("data", ""), allow_empty=False, what="merged document")
            except ValidationError as exc:
                self.add_error("data", exc)
                return cleaned
            if not isinstance(data, dict):
                self.add_error("data", "A document is a JSON object.")
            cleaned["merged"] = data
        return cleaned


class SyncSettingsForm(PortalForm):
    strict_collections = forms.BooleanField(
        required=False,
        label="Strict collections",
        help_text="Refuse pushes to collections that do not exist yet, instead of creating them.",
    )


class DeleteOrganisationForm(PortalForm):
    confirm_slug = forms.CharField(max_length=50, label="Type the organisation's slug to confirm")

    def __init__(self, *args: Any, slug: str, **kwargs: Any) -> None:
        self.slug = slug
        super().__init__(*args, **kwargs)

    def clean_confirm_slug(self) -> str:
        value = self.cleaned_data["confirm_slug"].strip()
        if value != self.slug:
            raise ValidationError("That is not this organisation's slug.")
        return value


class SetPasswordForm(NoColonMixin, auth_forms.SetPasswordForm):
    pass


class PasswordChangeForm(NoColonMixin, auth_forms.PasswordChangeForm):
    pass
