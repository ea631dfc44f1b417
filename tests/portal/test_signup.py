"""Sign-up: e-mail verification, background provisioning, no account enumeration, rate limits."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest
from django.core import mail, signing
from django.test import Client

from shared_apps.accounts.models import Membership, Signup, User
from shared_apps.audit.models import AuditEvent
from shared_apps.portal.services import signup_token
from tenants.models import Organisation
from tenants.tasks import provision_organisation
from tests.conftest import ensure_plans

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-and-unusual-passphrase"


@pytest.fixture(autouse=True)
def _plans(db: None) -> None:
    ensure_plans()


def sign_up(client: Client, capture, *, email: str = "ada@example.test", name: str = "Analytical Engines"):
    with capture(execute=True):
        return client.post("/signup/", {"email": email, "password": PASSWORD, "organisation_name": name})


def link_in(message) -> str:
    return re.search(r"https?://\S+", message.body).group(0)


def path_of(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def test_sign_up_verify_and_land_on_the_dashboard(client, django_capture_on_commit_callbacks) -> None:
    response = sign_up(client, django_capture_on_commit_callbacks)
    assert response.status_code == 302
    assert response["Location"] == "/signup/sent/"
    assert b"Check your inbox" in client.get("/signup/sent/").content
    # Nothing exists but the pending sign-up until the address is verified.
    assert not User.objects.exists()
    assert not Organisation.all_objects.exclude(schema_name="public").exists()
    (message,) = mail.outbox
    assert message.to == ["ada@example.test"]
    assert message.subject == "Confirm your e-mail address for Outpost"
    verify = path_of(link_in(message))
    assert verify.startswith("/signup/verify/")

    # The link itself (e-mail scanners fetch links) changes nothing.
    page = client.get(verify)
    assert page.status_code == 200
    assert b"Confirm and create Analytical Engines" in page.content
    assert not User.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(verify)
    assert response.status_code == 302
    organisation = Organisation.all_objects.get(name="Analytical Engines")
    assert response["Location"] == f"/o/{organisation.slug}/provisioning/"
    # Provisioning was queued after commit (eager in tests) and ran.
    organisation.refresh_from_db()
    assert organisation.status == "active"
    user = User.objects.get(email="ada@example.test")
    assert user.check_password(PASSWORD)
    assert user.email_verified_at is not None
    assert Membership.objects.get(user=user, organisation=organisation).role == "owner"

    # Signed in: the progress page sends an active organisation on to its dashboard.
    progress = client.get(response["Location"])
    assert progress.status_code == 302
    assert progress["Location"] == f"/o/{organisation.slug}/"
    dashboard = client.get(progress["Location"])
    assert dashboard.status_code == 200
    assert b"Your first sync" in dashboard.content
    assert client.get(f"/o/{organisation.slug}/status.json").json() == {
        "status": "active",
        "ready": True,
        "next": f"/o/{organisation.slug}/",
    }
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == [
        "signup.requested",
        "organisation.created",
        "member.added",
        "signup.verified",
        "organisation.provisioned",
    ]


def test_the_progress_page_polls_while_the_worker_provisions(client, django_capture_on_commit_callbacks) -> None:
    sign_up(client, django_capture_on_commit_callbacks)
    verify = path_of(link_in(mail.outbox[0]))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:  # the task is queued, not yet run
        response = client.post(verify)
    organisation = Organisation.all_objects.get(name="Analytical Engines")
    assert organisation.status == "provisioning"
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert f'data-status-url="/o/{organisation.slug}/status.json"'.encode() in page.content
    assert b'<noscript><meta http-equiv="refresh" content="2"></noscript>' in page.content
    assert page["Cache-Control"].startswith("max-age=0")
    status = client.get(f"/o/{organisation.slug}/status.json")
    assert status.json() == {"status": "provisioning", "ready": False, "next": f"/o/{organisation.slug}/"}
    # Every other page of the organisation waits for provisioning too.
    assert client.get(f"/o/{organisation.slug}/keys/")["Location"] == f"/o/{organisation.slug}/provisioning/"

    for callback in callbacks:
        callback()
    assert client.get(f"/o/{organisation.slug}/status.json").json()["ready"] is True


def test_a_lost_provisioning_task_is_sent_again(client, django_capture_on_commit_callbacks, settings) -> None:
    sign_up(client, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost it
        client.post(path_of(link_in(mail.outbox[0])))
    organisation = Organisation.all_objects.get(name="Analytical Engines")
    status_url = f"/o/{organisation.slug}/status.json"
    assert client.get(status_url).json()["ready"] is False  # too early to suspect a lost task
    Organisation.all_objects.filter(pk=organisation.pk).update(created_at=organisation.created_at.replace(year=2000))
    assert client.get(status_url).json()["ready"] is False  # this poll sends the task again (eager here)
    organisation.refresh_from_db()
    assert organisation.status == "active"
    assert client.get(status_url).json()["ready"] is True


def test_signing_up_with_a_registered_address_looks_the_same_and_mails_the_owner(
    client, django_capture_on_commit_callbacks
) -> None:
    User.objects.create_user("taken@example.test", "whatever-password-1", email_verified_at="2026-01-01T00:00Z")
    fresh = sign_up(Client(), django_capture_on_commit_callbacks, email="new@example.test")
    taken = sign_up(client, django_capture_on_commit_callbacks, email="Taken@Example.test")
    assert (taken.status_code, taken["Location"]) == (fresh.status_code, fresh["Location"])
    assert not Signup.objects.filter(email="taken@example.test").exists()
    existing = mail.outbox[-1]
    assert existing.to == ["taken@example.test"]
    assert existing.subject == "You already have an Outpost account"
    assert "/login/" in existing.body
    assert "/password/reset/" in existing.body
    assert "/signup/verify/" not in existing.body
    assert AuditEvent.objects.filter(action="signup.existing_account", target_id="taken@example.test").exists()


def test_sign_up_is_rate_limited_per_address_and_per_email(client, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_SIGNUP_LIMIT_PER_EMAIL = 2
    settings.PORTAL_SIGNUP_LIMIT_PER_IP = 3
    for _ in range(2):
        assert sign_up(client, django_capture_on_commit_callbacks).status_code == 302
    refused = sign_up(client, django_capture_on_commit_callbacks)
    assert refused.status_code == 429
    assert b"Too many sign-ups; try again later." in refused.content
    assert len(mail.outbox) == 2
    # The address's own budget is spent; another address from the same client has one attempt left of 3.
    assert sign_up(client, django_capture_on_commit_callbacks, email="b@example.test").status_code == 429
    other_client = Client(REMOTE_ADDR="10.0.0.9")
    assert sign_up(other_client, django_capture_on_commit_callbacks, email="c@example.test").status_code == 302


def test_sign_up_validates_the_form(client) -> None:
    weak = client.post("/signup/", {"email": "ada@example.test", "password": "password", "organisation_name": "X"})
    assert weak.status_code == 400
    assert b"This password is too short" in weak.content
    missing = client.post("/signup/", {"email": "not-an-address", "password": PASSWORD})
    assert missing.status_code == 400
    assert b"Enter a valid email address." in missing.content
    assert not Signup.objects.exists()
    assert not mail.outbox


def test_forged_expired_and_used_links(client, django_capture_on_commit_callbacks, monkeypatch) -> None:
    sign_up(client, django_capture_on_commit_callbacks)
    signup = Signup.objects.get()
    forged = client.get(f"/signup/verify/{signup.pk}:abc:def/")
    assert forged.status_code == 400
    assert b"This verification link is not valid." in forged.content
    assert client.post(f"/signup/verify/{signup.pk + 1}:abc:def/").status_code == 400

    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: time.time() - 3 * 24 * 3600))
    old = signup_token(signup.pk)
    monkeypatch.undo()
    expired = client.post(f"/signup/verify/{old}/")
    assert expired.status_code == 400
    assert b"This verification link has expired." in expired.content
    assert not User.objects.exists()

    link = path_of(link_in(mail.outbox[0]))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(link).status_code == 302
    again = Client().get(link)
    assert again.status_code == 200
    assert b"Already confirmed" in again.content
    assert Client().post(link).status_code == 200  # shows the same page, creates nothing more
    assert Organisation.all_objects.exclude(schema_name="public").count() == 1


def test_a_second_verified_sign_up_of_the_same_address_creates_nothing(client, django_capture_on_commit_callbacks):
    sign_up(client, django_capture_on_commit_callbacks, name="First")
    sign_up(Client(), django_capture_on_commit_callbacks, name="Second")
    first, second = (path_of(link_in(message)) for message in mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(first).status_code == 302
    refused = Client().post(second)
    assert refused.status_code == 409
    assert b"This address already has an account; log in." in refused.content
    assert list(Organisation.all_objects.exclude(schema_name="public").values_list("name", flat=True)) == ["First"]


def test_verifying_completes_an_account_created_without_a_password(client, django_capture_on_commit_callbacks):
    User.objects.create_user("cli-owner@example.test")  # e.g. `manage.py org create --owner`
    sign_up(client, django_capture_on_commit_callbacks, email="cli-owner@example.test")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(path_of(link_in(mail.outbox[0]))).status_code == 302
    user = User.objects.get(email="cli-owner@example.test")
    assert user.check_password(PASSWORD)
    assert user.memberships.get().role == "owner"


def test_signed_in_people_create_organisations_from_the_menu(owner, django_capture_on_commit_callbacks) -> None:
    assert owner.client.get("/signup/")["Location"] == "/organisations/new/"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.client.post("/organisations/new/", {"name": "Side Project"})
    organisation = Organisation.all_objects.get(name="Side Project")
    assert response["Location"] == f"/o/{organisation.slug}/provisioning/"
    organisation.refresh_from_db()
    assert organisation.status == "active"
    assert owner.user.memberships.get(organisation=organisation).role == "owner"


def test_the_provisioning_task_is_idempotent_and_acks_late(org) -> None:
    assert provision_organisation.acks_late is True
    assert provision_organisation(org.organisation.pk) == "active"
    assert provision_organisation(org.organisation.pk) == "active"
    assert provision_organisation(10**9) == "missing"
