"""Log-in and log-out, passwords, the home page and switching organisations."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from shared_apps.accounts.models import User
from shared_apps.audit.models import AuditEvent
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_log_in_with_any_case_of_the_address_and_log_out_by_post(owner) -> None:
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content
    response = client.post("/login/", {"username": "OWNER@acme.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/")["Location"] == f"/o/{owner.organisation.slug}/"
    assert client.get("/logout/").status_code == 405  # log-out is a POST (CSRF-protected)
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get(f"/o/{owner.organisation.slug}/")["Location"].startswith("/login/")


def test_a_wrong_password_says_so_without_telling_which_part_was_wrong(owner) -> None:
    wrong = Client().post("/login/", {"username": "owner@acme.test", "password": "nope"})
    unknown = Client().post("/login/", {"username": "nobody@acme.test", "password": "nope"})
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert b"That e-mail address and password do not match an account." in response.content


def test_log_in_attempts_are_rate_limited(owner, settings) -> None:
    settings.PORTAL_LOGIN_LIMIT_PER_EMAIL = 3
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "owner@acme.test", "password": "nope"})
    blocked = client.post("/login/", {"username": "owner@acme.test", "password": PASSWORD})
    assert b"Too many log-in attempts" in blocked.content
    assert "_auth_user_id" not in client.session


def test_the_next_parameter_brings_people_back(owner) -> None:
    client = Client()
    target = f"/o/{owner.organisation.slug}/keys/"
    login_url = client.get(target)["Location"]
    assert login_url == f"/login/?next={target}"
    response = client.post(login_url, {"username": "owner@acme.test", "password": PASSWORD, "next": target})
    assert response["Location"] == target


def test_password_reset_by_email(owner, settings) -> None:
    settings.OUTPOST_PUBLIC_URL = "https://portal.example.test"
    client = Client()
    response = client.post("/password/reset/", {"email": "owner@acme.test"})
    assert response["Location"] == "/password/reset/sent/"
    unknown = client.post("/password/reset/", {"email": "nobody@acme.test"})
    assert unknown["Location"] == "/password/reset/sent/"  # same answer, no e-mail
    (message,) = mail.outbox
    assert message.subject == "Reset your Outpost password"
    link = re.search(r"https://portal\.example\.test(/password/reset/\S+)", message.body).group(1)
    form = client.get(link, follow=True)
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand-new-passphrase-9", "new_password2": "brand-new-passphrase-9"},
    )
    assert done["Location"] == "/password/reset/done/"
    owner.user.refresh_from_db()
    assert owner.user.check_password("brand-new-passphrase-9")
    assert AuditEvent.objects.filter(action="user.password_reset", target_id="owner@acme.test").exists()


def test_accounts_without_a_password_can_set_one_by_reset(db) -> None:
    User.objects.create_user("cli@example.test")  # no usable password (made by the CLI)
    Client().post("/password/reset/", {"email": "cli@example.test"})
    assert [m.to for m in mail.outbox] == [["cli@example.test"]]


def test_password_reset_emails_are_rate_limited(owner, settings) -> None:
    settings.PORTAL_PASSWORD_RESET_LIMIT_PER_EMAIL = 2
    for _ in range(4):
        assert Client().post("/password/reset/", {"email": "owner@acme.test"})["Location"] == "/password/reset/sent/"
    assert len(mail.outbox) == 2


def test_password_change(owner) -> None:
    response = owner.client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )
    assert response["Location"] == "/"
    owner.user.refresh_from_db()
    assert owner.user.check_password("another-long-passphrase")
    assert AuditEvent.objects.filter(action="user.password_changed").count() == 1
    wrong = owner.client.post(
        "/account/password/",
        {"old_password": "nope", "new_password1": "x-y-z-1-2-3-4", "new_password2": "x-y-z-1-2-3-4"},
    )
    assert wrong.status_code == 200
    assert b"Your old password was entered incorrectly" in wrong.content


def test_home_sends_people_where_they_belong(db, make_member, other_org) -> None:
    assert Client().get("/")["Location"] == "/login/"
    loner = User.objects.create_user("loner@example.test", PASSWORD)
    client = Client()
    client.force_login(loner)
    page = client.get("/")
    assert page.status_code == 200
    assert b"You are not a member of any organisation yet." in page.content
    member = make_member("viewer")
    assert member.client.get("/")["Location"] == f"/o/{member.organisation.slug}/"


def test_switching_organisations_is_kept_in_the_session(org, other_org, make_member) -> None:
    member = make_member("viewer", email="two@example.test")
    make_member("developer", organisation=other_org.organisation, email="two@example.test")
    page = member.client.get(f"/o/{org.organisation.slug}/")
    # The header's switcher lists both organisations, the current one selected.
    assert b'<option value="acme" selected>Acme</option>' in page.content
    assert b'<option value="globex">Globex</option>' in page.content
    response = member.client.post("/organisations/switch/", {"organisation": "globex"})
    assert response["Location"] == "/o/globex/"
    assert member.client.get("/")["Location"] == "/o/globex/"
    assert member.client.get("/o/globex/").status_code == 200
    # Visiting an organisation's page makes it the current one as well.
    member.client.get("/o/acme/keys/")
    assert member.client.get("/")["Location"] == "/o/acme/"


def test_switching_to_an_organisation_you_are_not_in_is_404(owner, other_org) -> None:
    assert owner.client.post("/organisations/switch/", {"organisation": "globex"}).status_code == 404
    assert owner.client.post("/organisations/switch/", {"organisation": "nope"}).status_code == 404
    assert owner.client.get("/organisations/switch/").status_code == 405
