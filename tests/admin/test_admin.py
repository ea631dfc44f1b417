"""The platform admin: staff find and suspend organisations, manage keys; every action audited."""

from __future__ import annotations

import pytest
from django.test import Client

from shared_apps.accounts.models import User
from shared_apps.audit.models import AuditEvent
from tenants.models import Organisation
from tests.sync.helpers import mutation, push_ok

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_superuser("staff@outpost.test", "a-long-staff-password")
    client = Client()
    client.force_login(user)
    return client


def test_staff_find_organisations_by_search_and_filter(staff, org, other_org) -> None:
    response = staff.get("/admin/tenants/organisation/", {"q": "glob"})
    assert response.status_code == 200
    assert b"globex" in response.content
    assert b">acme<" not in response.content
    filtered = staff.get("/admin/tenants/organisation/", {"status__exact": "active", "plan__slug__exact": "free"})
    assert filtered.status_code == 200
    assert b"acme" in filtered.content


def test_suspend_action_asks_for_a_reason_and_is_audited_with_the_staff_actor(staff, org) -> None:
    response = staff.post(
        "/admin/tenants/organisation/",
        {"action": "suspend_selected", "_selected_action": [org.organisation.pk]},
    )
    assert response.status_code == 302
    reason_page = response["Location"]
    assert staff.get(reason_page).status_code == 200
    done = staff.post(reason_page, {"reason": "payment fraud"})
    assert done.status_code == 302
    assert Organisation.all_objects.get(pk=org.organisation.pk).status == "suspended"
    event = AuditEvent.objects.get(action="organisation.suspended", organisation=org.organisation)
    assert event.actor_label == "staff:staff@outpost.test"
    assert event.details == {"reason": "payment fraud"}
    assert org.client().get("/api/v1/whoami").json()["error"]["code"] == "tenant_suspended"
    resume_url = reason_page.replace("/suspend/", "/resume/")
    staff.post(resume_url, {"reason": "resolved with the customer"})
    assert Organisation.all_objects.get(pk=org.organisation.pk).status == "active"
    resumed = AuditEvent.objects.get(action="organisation.resumed", organisation=org.organisation)
    assert resumed.details == {"reason": "resolved with the customer"}


def test_plan_change_in_the_admin_is_audited_and_applies(staff, org) -> None:
    response = staff.post(
        f"/admin/tenants/organisation/{org.organisation.pk}/change/",
        {"name": "Acme", "plan": "pro", "domains-TOTAL_FORMS": 0, "domains-INITIAL_FORMS": 0},
    )
    assert response.status_code == 302, response.content[:2000]
    assert org.client().get("/api/v1/whoami").json()["organisation"]["plan"] == "pro"
    event = AuditEvent.objects.get(action="organisation.plan_changed")
    assert (event.actor_label, event.details["to"]) == ("staff:staff@outpost.test", "pro")


def test_api_keys_in_the_admin_never_show_secrets_and_can_be_revoked(staff, org) -> None:
    page = staff.get(f"/admin/apikeys/apikey/{org.api_key.pk}/change/")
    assert page.status_code == 200
    assert org.api_key.secret_hash.encode() not in page.content
    assert org.key.split("_")[2].encode() not in page.content
    staff.post("/admin/apikeys/apikey/", {"action": "revoke_selected", "_selected_action": [org.api_key.pk]})
    assert org.client().get("/api/v1/whoami").status_code == 401
    assert AuditEvent.objects.get(action="api_key.revoked").actor_label == "staff:staff@outpost.test"
    assert staff.get("/admin/apikeys/apikey/add/").status_code == 403


def test_the_audit_log_is_read_only(staff, org) -> None:
    event = AuditEvent.objects.filter(organisation=org.organisation).first()
    assert staff.get("/admin/audit/auditevent/").status_code == 200
    assert staff.get("/admin/audit/auditevent/add/").status_code == 403
    assert staff.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403


def test_tenant_documents_need_an_explicit_audited_support_session(staff, org) -> None:
    push_ok(org.client(), [mutation("private-doc", data={"secret": "customer data"})])
    url = f"/admin/tenants/organisation/{org.organisation.pk}/support/"
    before = staff.get(url, {"collection": "todos"})
    assert b"customer data" not in before.content
    assert not AuditEvent.objects.filter(action="support.access_granted").exists()
    staff.post(url, {"reason": "ticket #4521: sync stuck"})
    event = AuditEvent.objects.get(action="support.access_granted")
    assert (event.actor_label, event.details["reason"]) == ("staff:staff@outpost.test", "ticket #4521: sync stuck")
    after = staff.get(url, {"collection": "todos"})
    assert b"customer data" in after.content


def test_non_staff_users_cannot_use_the_admin(org) -> None:
    user = User.objects.create_user("someone@example.com", "a-long-user-password")
    client = Client()
    client.force_login(user)
    assert client.get("/admin/tenants/organisation/").status_code == 302
