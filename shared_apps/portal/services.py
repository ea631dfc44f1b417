"""Portal-only writes: sign-up and verification, background provisioning, key rolling, member management rules.

Each service is one transaction with its audit rows; e-mails and Celery tasks
are sent after commit (a rolled-back action sends nothing). The rules the
portal adds on top of the apps' services live here too: who may grant the
owner role, who may create ``admin``-scoped keys.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from shared_apps.accounts.models import Invite, Membership, MembershipRole, User
from shared_apps.accounts.services import (
    invite_create,
    invite_resend,
    membership_add,
    membership_change_role,
    membership_remove,
    signup_create,
    signup_verify,
)
from shared_apps.apikeys.models import ApiKey
from shared_apps.apikeys.selectors import api_key_cache_key
from shared_apps.apikeys.services import api_key_create, api_key_revoke
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.cache import cache_add, cache_delete_on_commit
from shared_apps.core.errors import Conflict, Forbidden, InvalidInput, RateLimited
from shared_apps.portal import ratelimit
from tenants.models import Organisation, OrganisationStatus
from tenants.selectors import organisation_cache_evict
from tenants.services import MAX_NAME_LENGTH, organisation_create

logger = logging.getLogger("outpost.portal")

SIGNUP_SALT = "outpost.portal.signup"


# --- E-mail ---------------------------------------------------------------------


def email_send(*, to: str, template: str, context: dict[str, Any]) -> None:
    """Send ``portal/emails/<template>.txt`` (first line: subject). Failures are logged, never raised:
    the action that sends the e-mail has already committed."""
    text = render_to_string(f"portal/emails/{template}.txt", context).strip()
    subject, _, body = text.partition("\n")
    try:
        send_mail(subject.strip(), body.strip() + "\n", settings.DEFAULT_FROM_EMAIL, [to])
    except Exception:
        logger.exception("could not send the %s e-mail", template)


def _email_on_commit(*, to: str, template: str, context: dict[str, Any]) -> None:
    transaction.on_commit(lambda: email_send(to=to, template=template, context=context))


# --- Sign-up, verification, provisioning ------------------------------------------


def signup_token(signup_id: int) -> str:
    return signing.TimestampSigner(salt=SIGNUP_SALT).sign(str(signup_id))


def signup_id_from_token(token: str) -> int:
    """The sign-up a verification link is for; ``InvalidInput`` when it is forged or too old."""
    try:
        value = signing.TimestampSigner(salt=SIGNUP_SALT).unsign(
            token, max_age=settings.PORTAL_VERIFICATION_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired as exc:
        raise InvalidInput(
            "This verification link has expired. Sign up again to get a new one.", code="signup_link_expired"
        ) from exc
    except signing.BadSignature as exc:
        raise InvalidInput("This verification link is not valid.", code="signup_link_invalid") from exc
    return int(value)


def signup_start(*, email: str, password: str, organisation_name: str, client_ip: str, base_url: str) -> None:
    """Start a sign-up: e-mail a verification link, or tell an existing account holder they have one.

    Rate limited per client address and per e-mail address. Either way the
    visitor sees the same "check your inbox" page, so the form cannot be used
    to find out who has an account.
    """
    window = settings.PORTAL_SIGNUP_WINDOW_SECONDS
    allowed = ratelimit.hits_allowed(
        [
            (f"signup:ip:{client_ip}", settings.PORTAL_SIGNUP_LIMIT_PER_IP),
            (f"signup:email:{ratelimit.email_digest(email)}", settings.PORTAL_SIGNUP_LIMIT_PER_EMAIL),
        ],
        window_seconds=window,
    )
    if not allowed:
        raise RateLimited("Too many sign-ups; try again later.", retry_after=window)
    with transaction.atomic():
        started = signup_create(email=email, password=password, organisation_name=organisation_name)
        if started.signup is not None:
            link = base_url + reverse("portal:signup-verify", args=[signup_token(started.signup.pk)])
            context = {"link": link, "organisation_name": started.signup.organisation_name, "email": started.email}
            _email_on_commit(to=started.email, template="signup_verify", context=context)
        else:
            context = {
                "email": started.email,
                "login_link": base_url + reverse("portal:login"),
                "reset_link": base_url + reverse("portal:password-reset"),
            }
            _email_on_commit(to=started.email, template="signup_existing", context=context)


def _provision_send(organisation_id: int) -> None:
    from tenants.tasks import provision_organisation_send

    try:
        provision_organisation_send(organisation_id)
    except Exception:
        # The status endpoint sends it again if the organisation stays in provisioning.
        logger.exception("could not send the provisioning task for organisation %s", organisation_id)


def provisioning_schedule(organisation: Organisation) -> None:
    """Provision ``organisation`` in the background once the current transaction commits."""
    organisation_id = organisation.pk
    transaction.on_commit(lambda: _provision_send(organisation_id))


def provisioning_nudge(organisation: Organisation) -> bool:
    """Send the (idempotent) provisioning task again for an organisation that has been provisioning too long.

    Covers a broker outage when the first task was sent. At most once per
    retry interval per organisation; returns whether a task was sent.
    """
    if organisation.status != OrganisationStatus.PROVISIONING:
        return False
    interval = settings.PORTAL_PROVISIONING_RETRY_SECONDS
    if timezone.now() - organisation.created_at < timedelta(seconds=interval):
        return False
    if not cache_add(f"portal:provision-nudge:{organisation.pk}", 1, interval):
        return False
    _provision_send(organisation.pk)
    return True


def signup_complete(*, signup_id: int) -> tuple[User, Organisation]:
    """Verify a sign-up (user, organisation, owner membership) and provision the organisation in the background."""
    with transaction.atomic():
        user, organisation = signup_verify(signup_id=signup_id)
        provisioning_schedule(organisation)
    return user, organisation


@transaction.atomic
def organisation_start(*, user: User, name: str) -> Organisation:
    """A signed-in user creates another organisation; they become its owner and it is provisioned in the background."""
    actor = Actor.for_user(user)
    organisation = organisation_create(actor=actor, name=name)
    membership_add(actor=actor, organisation=organisation, user=user, role=MembershipRole.OWNER)
    provisioning_schedule(organisation)
    return organisation


@transaction.atomic
def organisation_rename(*, actor: Actor, organisation: Organisation, name: str) -> Organisation:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"An organisation name is 1 to {MAX_NAME_LENGTH} characters.", code="invalid_name")
    organisation = Organisation.all_objects.select_for_update().get(pk=organisation.pk)
    previous = organisation.name
    if previous == name:
        return organisation
    organisation.name = name
    organisation.save(update_fields=["name", "updated_at"])
    audit_record(
        actor=actor,
        action="organisation.renamed",
        organisation=organisation,
        target_type="organisation",
        target_id=organisation.slug,
        details={"from": previous, "to": name},
    )
    # The API's cached snapshot carries the name (whoami shows it).
    organisation_cache_evict(organisation.pk)
    return organisation


# --- API keys ------------------------------------------------------------------------


def _check_key_scopes(by: Membership, scopes: Sequence[str]) -> None:
    # An admin-scoped key can change sync settings and revoke devices through the API, which only admins may do here.
    if "admin" in scopes and not by.has_role(MembershipRole.ADMIN):
        raise Forbidden("Only admins and owners can create keys with the admin scope.", code="admin_scope_forbidden")


def key_create(
    *, actor: Actor, by: Membership, name: str, scopes: Sequence[str], expires_at: datetime | None
) -> tuple[ApiKey, str]:
    _check_key_scopes(by, scopes)
    return api_key_create(
        actor=actor, organisation=by.organisation, name=name, scopes=list(scopes), expires_at=expires_at
    )


@transaction.atomic
def api_key_roll(*, actor: Actor, by: Membership, api_key: ApiKey, grace: timedelta) -> tuple[ApiKey, str]:
    """Replace a key: a new key with the same name and scopes now, the old one stops after ``grace``.

    The grace period is stored as the old key's ``expires_at`` (never later
    than an expiry it already had); a zero grace revokes it at once. A key
    that expires gets a replacement with the same lifetime.
    """
    old = ApiKey.objects.select_for_update().select_related("organisation").get(pk=api_key.pk)
    if not old.is_active:
        raise Conflict("Only an active key can be rolled.", code="key_not_active")
    if grace < timedelta(0):
        raise InvalidInput("The grace period cannot be negative.", code="invalid_grace")
    _check_key_scopes(by, old.scopes)
    now = timezone.now()
    new_expiry = now + (old.expires_at - old.created_at) if old.expires_at else None
    new, full_key = api_key_create(
        actor=actor, organisation=old.organisation, name=old.name, scopes=old.scopes, expires_at=new_expiry
    )
    if grace == timedelta(0):
        api_key_revoke(actor=actor, api_key=old, reason=f"rolled to {new.display_prefix}")
        grace_until = now
    else:
        grace_until = now + grace
        if old.expires_at is None or old.expires_at > grace_until:
            old.expires_at = grace_until
            old.save(update_fields=["expires_at"])
        grace_until = old.expires_at
        # The cached record carries the expiry the API checks.
        cache_delete_on_commit(api_key_cache_key(old.prefix))
    audit_record(
        actor=actor,
        action="api_key.rolled",
        organisation=old.organisation,
        target_type="api_key",
        target_id=old.display_prefix,
        details={
            "name": old.name,
            "new_key": new.display_prefix,
            "grace_seconds": int(grace.total_seconds()),
            "old_key_stops_at": grace_until.isoformat(),
        },
    )
    return new, full_key


# --- Members and invitations ----------------------------------------------------------


def _check_owner_rule(by: Membership, *roles: str) -> None:
    if MembershipRole.OWNER in roles and not by.has_role(MembershipRole.OWNER):
        raise Forbidden("Only an owner can grant, change or remove the owner role.", code="owner_required")


def member_change_role(*, actor: Actor, by: Membership, membership: Membership, role: str) -> Membership:
    """Change a member's role; only owners touch the owner role (the last owner stays, see accounts)."""
    _check_owner_rule(by, role, membership.role)
    return membership_change_role(actor=actor, membership=membership, role=role)


def member_remove(*, actor: Actor, by: Membership, membership: Membership) -> None:
    """Remove a member (or leave, when ``membership`` is ``by``); the last owner cannot go."""
    if membership.pk != by.pk:
        _check_owner_rule(by, membership.role)
    membership_remove(actor=actor, membership=membership)


@transaction.atomic
def ownership_transfer(*, actor: Actor, by: Membership, to: Membership) -> None:
    """Make ``to`` an owner and ``by`` (an owner) an admin, in one transaction."""
    if not by.has_role(MembershipRole.OWNER):
        raise Forbidden("Only an owner can transfer ownership.", code="owner_required")
    if to.pk == by.pk or to.organisation_id != by.organisation_id:
        raise InvalidInput("Choose another member of this organisation.", code="invalid_member")
    membership_change_role(actor=actor, membership=to, role=MembershipRole.OWNER)
    membership_change_role(actor=actor, membership=by, role=MembershipRole.ADMIN)
    audit_record(
        actor=actor,
        action="organisation.ownership_transferred",
        organisation=by.organisation,
        target_type="user",
        target_id=to.user.email,
        details={"from": by.user.email, "to": to.user.email},
    )


def _invite_email(invite: Invite, token: str, base_url: str, invited_by: User | None) -> None:
    context = {
        "link": base_url + reverse("portal:invite", args=[token]),
        "organisation_name": invite.organisation.name,
        "role": invite.role,
        "invited_by": invited_by.email if invited_by else "",
        "expires_at": invite.expires_at,
    }
    _email_on_commit(to=invite.email, template="invite", context=context)


@transaction.atomic
def invite_send(*, actor: Actor, by: Membership, email: str, role: str, base_url: str) -> Invite:
    """Invite someone by e-mail; the link is mailed after commit."""
    _check_owner_rule(by, role)
    invite, token = invite_create(actor=actor, organisation=by.organisation, email=email, role=role, invited_by=by.user)
    _invite_email(invite, token, base_url, by.user)
    return invite


@transaction.atomic
def invite_send_again(*, actor: Actor, by: Membership, invite: Invite, base_url: str) -> Invite:
    """Resend an invitation with a new link (the old link stops working) and a new expiry."""
    _check_owner_rule(by, invite.role)
    invite, token = invite_resend(actor=actor, invite=invite)
    _invite_email(invite, token, base_url, by.user)
    return invite


def invite_cancel(*, actor: Actor, by: Membership, invite: Invite) -> Invite:
    """Withdraw an invitation (its link stops working)."""
    from shared_apps.accounts.services import invite_withdraw

    _check_owner_rule(by, invite.role)
    return invite_withdraw(actor=actor, invite=invite)


@transaction.atomic
def invite_signup(*, token: str, email: str, password: str, full_name: str = "") -> Membership:
    """Create the account of an invited address (the link proves it) and accept the invitation, together."""
    from shared_apps.accounts.services import invite_accept, user_create_verified

    user = user_create_verified(email=email, password=password, full_name=full_name)
    return invite_accept(user=user, token=token)


def public_url() -> str:
    """The platform's public address (links in e-mails, examples on pages); never taken from the request's Host."""
    return settings.OUTPOST_PUBLIC_URL.rstrip("/")
