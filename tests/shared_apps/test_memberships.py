"""Memberships: roles, the last-owner rule, and audit rows in the same transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from shared_apps.accounts.models import Membership, User
from shared_apps.accounts.services import (
    membership_add,
    membership_change_role,
    membership_remove,
    user_get_or_create,
)
from shared_apps.audit.models import AuditEvent
from shared_apps.audit.services import CLI, Actor, audit_record
from shared_apps.core.errors import Conflict, InvalidInput

pytestmark = pytest.mark.django_db


def test_users_log_in_by_email_case_insensitively() -> None:
    user, created = user_get_or_create(email="Ada@Example.com")
    assert created
    assert user.email == "ada@example.com"
    again, created_again = user_get_or_create(email="ADA@example.COM")
    assert (again.pk, created_again) == (user.pk, False)
    assert User.USERNAME_FIELD == "email"


def test_member_added_role_changed_and_removed_are_audited(org) -> None:
    owner, _ = user_get_or_create(email="owner@acme.test")
    dev, _ = user_get_or_create(email="dev@acme.test")
    actor = Actor.for_user(owner)
    membership_add(actor=CLI, organisation=org.organisation, user=owner, role="owner")
    membership = membership_add(actor=actor, organisation=org.organisation, user=dev, role="developer")
    membership_change_role(actor=actor, membership=membership, role="admin")
    membership_remove(actor=actor, membership=membership)
    events = list(
        AuditEvent.objects.filter(organisation=org.organisation, action__startswith="member.")
        .order_by("id")
        .values_list("action", "actor_label", "target_id", "details")
    )
    assert events == [
        ("member.added", "cli", "owner@acme.test", {"role": "owner"}),
        ("member.added", "user:owner@acme.test", "dev@acme.test", {"role": "developer"}),
        ("member.role_changed", "user:owner@acme.test", "dev@acme.test", {"from": "developer", "to": "admin"}),
        ("member.removed", "user:owner@acme.test", "dev@acme.test", {"role": "admin"}),
    ]


def test_the_last_owner_can_neither_be_demoted_nor_removed(org) -> None:
    owner, _ = user_get_or_create(email="owner@acme.test")
    membership = membership_add(actor=CLI, organisation=org.organisation, user=owner, role="owner")
    with pytest.raises(Conflict) as excinfo:
        membership_change_role(actor=CLI, membership=membership, role="admin")
    assert excinfo.value.code == "last_owner"
    with pytest.raises(Conflict):
        membership_remove(actor=CLI, membership=membership)
    second, _ = user_get_or_create(email="second@acme.test")
    membership_add(actor=CLI, organisation=org.organisation, user=second, role="owner")
    membership_change_role(actor=CLI, membership=membership, role="viewer")
    assert Membership.objects.get(pk=membership.pk).role == "viewer"


def test_unknown_roles_and_duplicate_members_are_refused(org) -> None:
    user, _ = user_get_or_create(email="x@acme.test")
    with pytest.raises(InvalidInput):
        membership_add(actor=CLI, organisation=org.organisation, user=user, role="god")
    membership_add(actor=CLI, organisation=org.organisation, user=user, role="viewer")
    with pytest.raises(Conflict):
        membership_add(actor=CLI, organisation=org.organisation, user=user, role="viewer")


def test_audit_rows_roll_back_with_the_change(org) -> None:
    user, _ = user_get_or_create(email="y@acme.test")
    with pytest.raises(RuntimeError), transaction.atomic():
        membership_add(actor=CLI, organisation=org.organisation, user=user, role="viewer")
        raise RuntimeError("the surrounding transaction fails")
    assert not AuditEvent.objects.filter(target_id="y@acme.test").exists()
    assert not Membership.objects.filter(user=user).exists()


def test_audit_record_refuses_to_run_outside_a_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest-django wraps the test in a transaction; pretend it does not.
    monkeypatch.setattr(transaction.get_connection(), "in_atomic_block", False)
    with pytest.raises(RuntimeError, match="inside the mutating service's transaction"):
        audit_record(actor=CLI, action="x")
