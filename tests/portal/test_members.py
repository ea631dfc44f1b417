"""Members and invitations: invite, accept (signed in or signing up), resend, withdraw, roles, removal, ownership."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from shared_apps.accounts.models import Invite, Membership, Signup, User
from shared_apps.accounts.services import invite_token_hash
from shared_apps.apikeys.tasks import cleanup_expired
from shared_apps.audit.models import AuditEvent
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite(admin, django_capture_on_commit_callbacks):
    """Send an invitation as ``admin``; returns a function giving (Invite, link path)."""

    def send(email: str = "new@example.test", role: str = "developer", by=None):
        member = by or admin
        with django_capture_on_commit_callbacks(execute=True):
            response = member.client.post(f"/o/{member.organisation.slug}/members/", {"email": email, "role": role})
        if response.status_code != 302:
            return response, None
        return Invite.objects.get(email=email.lower(), accepted_at=None, withdrawn_at=None), last_link(email)

    return send


def last_link(email: str) -> str:
    message = [m for m in mail.outbox if m.to == [email.lower()]][-1]
    return re.search(r"https?://[^/\s]+(/invites/\S+/)", message.body).group(1)


def test_an_admin_invites_by_email(admin, invite) -> None:
    row, link = invite("New@Example.test")
    assert (row.email, row.role, row.invited_by) == ("new@example.test", "developer", admin.user)
    assert row.expires_at - timezone.now() > timedelta(days=6, hours=23)
    token = link.split("/")[2]
    assert row.token_hash == invite_token_hash(token)
    assert token not in str(Invite.objects.values_list())
    (message,) = mail.outbox
    assert message.subject == f"You are invited to join {admin.organisation.name} on Outpost"
    assert "admin@acme.test invited you" in message.body
    page = admin.client.get(f"/o/{admin.organisation.slug}/members/")
    assert b'<tr data-invite="new@example.test">' in page.content
    assert AuditEvent.objects.filter(action="invite.created", target_id="new@example.test", actor=admin.user).exists()


def test_a_newcomer_signs_up_from_the_invitation(admin, invite) -> None:
    row, link = invite()
    client = Client()
    page = client.get(link)
    assert page.status_code == 200
    assert b"Choose a password to create your account." in page.content
    response = client.post(link, {"full_name": "New Person", "password": PASSWORD})
    assert response["Location"] == f"/o/{admin.organisation.slug}/"
    user = User.objects.get(email="new@example.test")
    assert user.email_verified_at is not None
    assert user.full_name == "New Person"
    assert Membership.objects.get(user=user, organisation=admin.organisation).role == "developer"
    assert b"You joined Acme as developer." in client.get(response["Location"]).content
    row.refresh_from_db()
    assert (row.accepted_by, row.accepted_at is not None) == (user, True)
    assert Client().get(link).status_code == 410
    actions = AuditEvent.objects.filter(target_id="new@example.test").values_list("action", flat=True)
    assert set(actions) >= {"invite.created", "user.created", "member.added", "invite.accepted"}


def test_someone_with_an_account_logs_in_to_accept(admin, invite) -> None:
    User.objects.create_user("known@example.test", PASSWORD)
    _, link = invite("known@example.test", role="viewer")
    client = Client()
    page = client.get(link)
    assert b"Log in to accept" in page.content
    assert f'href="/login/?next={link}"'.encode() in page.content
    assert client.post(link, {"password": "x"}).status_code == 200  # no account creation for known addresses
    client.post("/login/", {"username": "known@example.test", "password": PASSWORD, "next": link})
    assert b"Accept and join" in client.get(link).content
    assert client.post(link)["Location"] == f"/o/{admin.organisation.slug}/"
    assert Membership.objects.get(user__email="known@example.test").role == "viewer"


def test_only_the_invited_address_can_accept(admin, invite, make_member) -> None:
    _, link = invite()
    other = make_member("viewer", email="other@example.test")
    page = other.client.get(link)
    assert page.status_code == 403
    assert b"This invitation is for someone else" in page.content
    assert other.client.post(link).status_code == 403
    assert not User.objects.filter(email="new@example.test").exists()


def test_resending_replaces_the_link(admin, invite, django_capture_on_commit_callbacks) -> None:
    row, old_link = invite()
    Invite.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert Client().get(old_link).status_code == 410  # expired
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.client.post(f"/o/{admin.organisation.slug}/invites/{row.pk}/resend/")
    assert response.status_code == 302
    new_link = last_link("new@example.test")
    assert new_link != old_link
    assert Client().get(old_link).status_code == 404
    assert Client().get(new_link).status_code == 200
    row.refresh_from_db()
    assert row.expires_at > timezone.now() + timedelta(days=6)
    assert AuditEvent.objects.filter(action="invite.resent").count() == 1


def test_withdrawing_kills_the_link(admin, invite) -> None:
    row, link = invite()
    response = admin.client.post(f"/o/{admin.organisation.slug}/invites/{row.pk}/withdraw/")
    assert response.status_code == 302
    assert Client().get(link).status_code == 404
    assert Client().post(link, {"password": PASSWORD}).status_code == 404
    assert AuditEvent.objects.filter(action="invite.withdrawn").count() == 1
    # Withdrawn invitations leave the list, and the address can be invited again.
    assert b'data-invite="new@example.test"' not in admin.client.get(f"/o/{admin.organisation.slug}/members/").content
    assert invite()[1] is not None


def test_an_expired_invitation_cannot_be_accepted(admin, invite, make_member) -> None:
    row, link = invite("late@example.test")
    Invite.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = Client().get(link)
    assert page.status_code == 410
    assert b"This invitation has expired" in page.content
    late = User.objects.create_user("late@example.test", PASSWORD)
    client = Client()
    client.force_login(late)
    assert client.post(link).status_code == 410
    assert not Membership.objects.filter(user=late).exists()


def test_duplicate_invitations_and_members_are_refused(admin, invite, developer) -> None:
    invite()
    again, _ = invite()
    assert again.status_code == 409
    assert b"already has a pending invitation; resend or withdraw it." in again.content
    member, _ = invite(developer.user.email)
    assert member.status_code == 409
    assert b"is already a member." in member.content
    bad, _ = invite("not an address")
    assert bad.status_code == 400
    assert len(mail.outbox) == 1


def test_only_owners_invite_owners(admin, owner, invite) -> None:
    page = admin.client.get(f"/o/{admin.organisation.slug}/members/")
    assert b'<option value="owner"' not in page.content
    refused, _ = invite("boss@example.test", role="owner")
    assert refused.status_code == 400  # not one of the choices an admin is offered
    assert not Invite.objects.exists()
    row, _ = invite("boss@example.test", role="owner", by=owner)
    assert row.role == "owner"


def test_admins_change_roles_but_not_owners(admin, owner, developer) -> None:
    slug = admin.organisation.slug
    response = admin.client.post(f"/o/{slug}/members/{developer.membership.pk}/role/", {"role": "viewer"})
    assert response.status_code == 302
    developer.membership.refresh_from_db()
    assert developer.membership.role == "viewer"
    event = AuditEvent.objects.get(action="member.role_changed")
    assert (event.actor, event.details) == (admin.user, {"from": "developer", "to": "viewer"})

    admin.client.post(f"/o/{slug}/members/{developer.membership.pk}/role/", {"role": "owner"})
    admin.client.post(f"/o/{slug}/members/{owner.membership.pk}/role/", {"role": "viewer"})
    page = admin.client.get(f"/o/{slug}/members/")
    assert b"Only an owner can grant, change or remove the owner role." in page.content
    owner.membership.refresh_from_db()
    developer.membership.refresh_from_db()
    assert (owner.membership.role, developer.membership.role) == ("owner", "viewer")

    owner.client.post(f"/o/{slug}/members/{developer.membership.pk}/role/", {"role": "owner"})
    developer.membership.refresh_from_db()
    assert developer.membership.role == "owner"


def test_the_last_owner_cannot_be_demoted_or_leave(owner) -> None:
    slug = owner.organisation.slug
    owner.client.post(f"/o/{slug}/members/{owner.membership.pk}/role/", {"role": "admin"})
    assert b"The last owner cannot be demoted" in owner.client.get(f"/o/{slug}/members/").content
    response = owner.client.post(f"/o/{slug}/members/leave/")
    assert response["Location"] == f"/o/{slug}/members/"
    assert b"The last owner cannot be removed" in owner.client.get(f"/o/{slug}/members/").content
    owner.client.post(f"/o/{slug}/members/{owner.membership.pk}/remove/")
    owner.membership.refresh_from_db()
    assert owner.membership.role == "owner"


def test_removing_members(admin, owner, developer) -> None:
    slug = admin.organisation.slug
    assert admin.client.post(f"/o/{slug}/members/{developer.membership.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=developer.membership.pk).exists()
    assert developer.client.get(f"/o/{slug}/").status_code == 404
    admin.client.post(f"/o/{slug}/members/{owner.membership.pk}/remove/")
    assert Membership.objects.filter(pk=owner.membership.pk).exists()
    assert AuditEvent.objects.filter(action="member.removed").count() == 1


def test_a_member_leaves(viewer) -> None:
    slug = viewer.organisation.slug
    viewer.client.get(f"/o/{slug}/")
    response = viewer.client.post(f"/o/{slug}/members/leave/")
    assert response["Location"] == "/"
    assert not Membership.objects.filter(pk=viewer.membership.pk).exists()
    assert b"You left Acme." in viewer.client.get("/", follow=True).content


def test_transferring_ownership(owner, developer) -> None:
    slug = owner.organisation.slug
    response = owner.client.post(f"/o/{slug}/members/transfer/", {"membership_id": developer.membership.pk})
    assert response.status_code == 302
    owner.membership.refresh_from_db()
    developer.membership.refresh_from_db()
    assert (owner.membership.role, developer.membership.role) == ("admin", "owner")
    event = AuditEvent.objects.get(action="organisation.ownership_transferred")
    assert event.details == {"from": "owner@acme.test", "to": "dev@acme.test"}
    # The former owner is an admin now: no more transfers.
    assert (
        owner.client.post(f"/o/{slug}/members/transfer/", {"membership_id": developer.membership.pk}).status_code == 403
    )


def test_transfer_needs_another_member_of_this_organisation(owner, other_org, make_member) -> None:
    stranger = make_member("viewer", organisation=other_org.organisation)
    slug = owner.organisation.slug
    for target in (owner.membership.pk, stranger.membership.pk, "x"):
        owner.client.post(f"/o/{slug}/members/transfer/", {"membership_id": target})
    owner.membership.refresh_from_db()
    stranger.membership.refresh_from_db()
    assert (owner.membership.role, stranger.membership.role) == ("owner", "viewer")
    assert not AuditEvent.objects.filter(action="organisation.ownership_transferred").exists()


def test_cleanup_deletes_invitations_expired_a_month_ago(admin, invite) -> None:
    old, _ = invite("old@example.test")
    recent, _ = invite("recent@example.test")
    Invite.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=31))
    Invite.objects.filter(pk=recent.pk).update(expires_at=timezone.now() - timedelta(days=10))
    stale = Signup.objects.create(email="s@example.test", password="x", organisation_name="S")
    Signup.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=31))
    result = cleanup_expired()
    assert result["invites"] == 1
    assert result["signups"] == 1
    assert list(Invite.objects.values_list("email", flat=True)) == ["recent@example.test"]


def test_the_member_list_costs_a_fixed_number_of_queries(owner, make_member, invite, django_assert_max_num_queries):
    for number in range(5):
        make_member("viewer")
        invite(f"invitee{number}@example.test")
    owner.client.get(f"/o/{owner.organisation.slug}/members/")  # the session remembers the organisation
    # search_path, session, user, membership, members, invitations, the header's switcher
    with django_assert_max_num_queries(7):
        response = owner.client.get(f"/o/{owner.organisation.slug}/members/")
    assert response.content.count(b"<tr data-member=") == 7
    assert response.content.count(b"<tr data-invite=") == 5
