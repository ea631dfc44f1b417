"""Users and memberships: every change is audited in its own transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from shared_apps.accounts.models import Invite, Membership, MembershipRole, Signup, User
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tenants.models import Organisation, OrganisationStatus


def user_get_or_create(*, email: str, password: str | None = None) -> tuple[User, bool]:
    """Find a user by e-mail (case-insensitively) or create one with an unusable password."""
    normalised = User.objects.normalize_email(email).strip().lower()
    existing = User.objects.filter(email__iexact=normalised).first()
    if existing:
        return existing, False
    return User.objects.create_user(normalised, password), True


def _validate_role(role: str) -> None:
    if role not in MembershipRole.values:
        raise InvalidInput(f"Unknown role {role!r}.", code="invalid_role", details={"allowed": MembershipRole.values})


@transaction.atomic
def membership_add(*, actor: Actor, organisation: Organisation, user: User, role: str) -> Membership:
    _validate_role(role)
    if Membership.objects.filter(organisation=organisation, user=user).exists():
        raise Conflict("This user is already a member.", code="already_member")
    membership = Membership.objects.create(organisation=organisation, user=user, role=role)
    audit_record(
        actor=actor,
        action="member.added",
        organisation=organisation,
        target_type="user",
        target_id=user.email,
        details={"role": role},
    )
    return membership


def _other_owners(membership: Membership) -> bool:
    return (
        Membership.objects.select_for_update()
        .filter(organisation_id=membership.organisation_id, role=MembershipRole.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def membership_change_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    """Change a member's role; the last owner cannot be demoted."""
    _validate_role(role)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    previous = membership.role
    if previous == role:
        return membership
    if previous == MembershipRole.OWNER and not _other_owners(membership):
        raise Conflict("The last owner cannot be demoted; make someone else owner first.", code="last_owner")
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        actor=actor,
        action="member.role_changed",
        organisation=membership.organisation,
        target_type="user",
        target_id=membership.user.email,
        details={"from": previous, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    """Remove a member; the last owner cannot leave or be removed."""
    membership = Membership.objects.select_for_update().select_related("user", "organisation").get(pk=membership.pk)
    if membership.role == MembershipRole.OWNER and not _other_owners(membership):
        raise Conflict("The last owner cannot be removed; make someone else owner first.", code="last_owner")
    audit_record(
        actor=actor,
        action="member.removed",
        organisation=membership.organisation,
        target_type="user",
        target_id=membership.user.email,
        details={"role": membership.role},
    )
    membership.delete()


# --- Invitations -------------------------------------------------------------

INVITE_CLEANUP_DAYS = 30


def invite_expiry() -> timedelta:
    return timedelta(days=getattr(settings, "PORTAL_INVITE_EXPIRY_DAYS", 7))


def invite_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_invite_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, invite_token_hash(token)


def _normalise_email(email: str) -> str:
    normalised = User.objects.normalize_email(email or "").strip().lower()
    try:
        validate_email(normalised)
    except ValidationError as exc:
        raise InvalidInput("Enter a valid e-mail address.", code="invalid_email") from exc
    return normalised


@transaction.atomic
def invite_create(
    *, actor: Actor, organisation: Organisation, email: str, role: str, invited_by: User | None = None
) -> tuple[Invite, str]:
    """Invite ``email`` to join ``organisation`` as ``role``; returns the invite and the link's token.

    The token is returned once (for the e-mail) and only its digest is stored.
    An expired pending invitation for the same address is withdrawn and
    replaced; an unexpired one must be resent or withdrawn instead.
    """
    _validate_role(role)
    email = _normalise_email(email)
    if organisation.status != OrganisationStatus.ACTIVE:
        raise Conflict("Only an active organisation can invite members.", code="organisation_not_active")
    if Membership.objects.filter(organisation=organisation, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member.", code="already_member")
    now = timezone.now()
    pending = (
        Invite.objects.select_for_update()
        .filter(organisation=organisation, email__iexact=email, accepted_at__isnull=True, withdrawn_at__isnull=True)
        .first()
    )
    if pending is not None:
        if pending.expires_at > now:
            raise Conflict(f"{email} already has a pending invitation; resend or withdraw it.", code="invite_pending")
        pending.withdrawn_at = now
        pending.save(update_fields=["withdrawn_at", "updated_at"])
    token, token_hash = _new_invite_token()
    try:
        with transaction.atomic():
            invite = Invite.objects.create(
                organisation=organisation,
                email=email,
                role=role,
                token_hash=token_hash,
                invited_by=invited_by if invited_by is not None else actor.user,
                expires_at=now + invite_expiry(),
            )
    except IntegrityError as exc:  # a concurrent invitation of the same address won the race
        raise Conflict(f"{email} already has a pending invitation.", code="invite_pending") from exc
    audit_record(
        actor=actor,
        action="invite.created",
        organisation=organisation,
        target_type="invite",
        target_id=email,
        details={"role": role, "expires_at": invite.expires_at.isoformat()},
    )
    return invite, token


def _locked_pending_invite(invite: Invite) -> Invite:
    invite = Invite.objects.select_for_update().select_related("organisation").get(pk=invite.pk)
    if invite.accepted_at is not None:
        raise Conflict("This invitation was already accepted.", code="invite_accepted")
    if invite.withdrawn_at is not None:
        raise Conflict("This invitation was withdrawn.", code="invite_withdrawn")
    return invite


@transaction.atomic
def invite_resend(*, actor: Actor, invite: Invite) -> tuple[Invite, str]:
    """Give a pending (or expired) invitation a new token and a new expiry; earlier links stop working."""
    invite = _locked_pending_invite(invite)
    token, invite.token_hash = _new_invite_token()
    invite.expires_at = timezone.now() + invite_expiry()
    invite.save(update_fields=["token_hash", "expires_at", "updated_at"])
    audit_record(
        actor=actor,
        action="invite.resent",
        organisation=invite.organisation,
        target_type="invite",
        target_id=invite.email,
        details={"role": invite.role, "expires_at": invite.expires_at.isoformat()},
    )
    return invite, token


@transaction.atomic
def invite_withdraw(*, actor: Actor, invite: Invite) -> Invite:
    invite = _locked_pending_invite(invite)
    invite.withdrawn_at = timezone.now()
    invite.save(update_fields=["withdrawn_at", "updated_at"])
    audit_record(
        actor=actor,
        action="invite.withdrawn",
        organisation=invite.organisation,
        target_type="invite",
        target_id=invite.email,
        details={"role": invite.role},
    )
    return invite


def invite_find(*, token: str) -> Invite | None:
    """The invitation a link's token belongs to (any state), or ``None``."""
    if not token or len(token) > 100:
        return None
    return (
        Invite.objects.select_related("organisation", "invited_by").filter(token_hash=invite_token_hash(token)).first()
    )


@transaction.atomic
def invite_accept(*, user: User, token: str) -> Membership:
    """Accept an invitation as ``user``, whose e-mail address must be the invited one.

    Following the link proves the address, so an unverified user becomes verified.
    """
    found = invite_find(token=token)
    if found is None:
        raise NotFound("This invitation link is not valid.", code="invite_invalid")
    invite = _locked_pending_invite(found)
    if invite.expires_at <= timezone.now():
        raise Conflict("This invitation has expired; ask for a new one.", code="invite_expired")
    if invite.organisation.status != OrganisationStatus.ACTIVE:
        raise Conflict("This organisation is not accepting members.", code="organisation_not_active")
    if user.email.lower() != invite.email.lower():
        raise Forbidden(f"This invitation is for {invite.email}.", code="invite_email_mismatch")
    actor = Actor.for_user(user)
    membership = membership_add(actor=actor, organisation=invite.organisation, user=user, role=invite.role)
    invite.accepted_at = timezone.now()
    invite.accepted_by = user
    invite.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    if user.email_verified_at is None:
        user.email_verified_at = invite.accepted_at
        user.save(update_fields=["email_verified_at"])
    audit_record(
        actor=actor,
        action="invite.accepted",
        organisation=invite.organisation,
        target_type="invite",
        target_id=invite.email,
        details={"role": invite.role},
    )
    return membership


def invites_cleanup(*, older_than_days: int = INVITE_CLEANUP_DAYS) -> int:
    """Delete invitations that expired more than ``older_than_days`` ago (the audit log keeps their history)."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = Invite.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


# --- Sign-up with e-mail verification ------------------------------------------

SIGNUP_CLEANUP_DAYS = 30


@dataclass(frozen=True)
class SignupStarted:
    """What a sign-up led to: a pending sign-up to verify, or the existing account of that address."""

    email: str
    signup: Signup | None = None
    existing_user: User | None = None


@transaction.atomic
def signup_create(*, email: str, password: str, organisation_name: str) -> SignupStarted:
    """Record a sign-up waiting for e-mail verification (the password is stored hashed).

    When the address already belongs to a verified account nothing is created
    and that user is returned, so the caller can tell them by e-mail; what the
    visitor sees must be the same either way (no account enumeration).
    Passwords are validated by the caller's form (Django's validators).
    """
    email = _normalise_email(email)
    organisation_name = organisation_name.strip()
    if not organisation_name or len(organisation_name) > 200:
        raise InvalidInput("An organisation name is 1 to 200 characters.", code="invalid_name")
    existing = User.objects.filter(email__iexact=email, is_active=True).first()
    if existing is not None and (existing.email_verified_at is not None or existing.has_usable_password()):
        audit_record(
            actor=Actor.system("portal"),
            action="signup.existing_account",
            target_type="user",
            target_id=email,
        )
        return SignupStarted(email=email, existing_user=existing)
    signup = Signup.objects.create(email=email, password=make_password(password), organisation_name=organisation_name)
    audit_record(
        actor=Actor.system("portal"),
        action="signup.requested",
        target_type="signup",
        target_id=email,
        details={"organisation_name": organisation_name, "signup_id": signup.pk},
    )
    return SignupStarted(email=email, signup=signup)


@transaction.atomic
def signup_verify(*, signup_id: int) -> tuple[User, Organisation]:
    """Verify a sign-up: create (or complete) the user, the organisation and the owner membership.

    The organisation starts in status ``provisioning``; the caller schedules
    its provisioning after commit. A sign-up verifies once.
    """
    from tenants.services import organisation_create

    signup = Signup.objects.select_for_update().filter(pk=signup_id).first()
    if signup is None:
        raise NotFound("This verification link is not valid.", code="signup_invalid")
    if signup.verified_at is not None:
        raise Conflict("This address is already verified; log in.", code="signup_used")
    now = timezone.now()
    user = User.objects.select_for_update().filter(email__iexact=signup.email).first()
    if user is None:
        user = User(email=signup.email, password=signup.password, email_verified_at=now)
        user.save()
    elif user.email_verified_at is None and not user.has_usable_password():
        # An account made for this address without a password (the CLI's --owner): complete it.
        user.password = signup.password
        user.email_verified_at = now
        user.save(update_fields=["password", "email_verified_at"])
    else:
        raise Conflict("This address already has an account; log in.", code="account_exists")
    actor = Actor.for_user(user)
    organisation = organisation_create(actor=actor, name=signup.organisation_name)
    membership_add(actor=actor, organisation=organisation, user=user, role=MembershipRole.OWNER)
    signup.verified_at = now
    signup.user = user
    signup.organisation = organisation
    signup.save(update_fields=["verified_at", "user", "organisation"])
    audit_record(
        actor=actor,
        action="signup.verified",
        organisation=organisation,
        target_type="user",
        target_id=user.email,
        details={"signup_id": signup.pk},
    )
    return user, organisation


def signups_cleanup(*, older_than_days: int = SIGNUP_CLEANUP_DAYS) -> int:
    """Delete sign-ups never verified (they hold a password hash) after ``older_than_days``."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = Signup.objects.filter(verified_at__isnull=True, created_at__lt=cutoff).delete()
    return deleted


@transaction.atomic
def user_create_verified(*, email: str, password: str, full_name: str = "") -> User:
    """Create a user whose address is already proven (they followed an invitation sent to it)."""
    email = _normalise_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict("This address already has an account; log in.", code="account_exists")
    user = User(email=email, full_name=full_name.strip()[:200], email_verified_at=timezone.now())
    user.set_password(password)
    user.save()
    audit_record(actor=Actor.for_user(user), action="user.created", target_type="user", target_id=email)
    return user
