"""Users and memberships: every change is audited in its own transaction."""

from __future__ import annotations

from django.db import transaction

from shared_apps.accounts.models import Membership, MembershipRole, User
from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import Conflict, InvalidInput
from tenants.models import Organisation


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
