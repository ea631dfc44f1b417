"""Suspend, resume and delete: API effect, audit rows, explicit confirmation."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_exists

from shared_apps.audit.models import AuditEvent
from shared_apps.audit.services import CLI
from shared_apps.core.errors import Conflict, InvalidInput
from tenants.services import organisation_delete, organisation_resume, organisation_suspend

pytestmark = pytest.mark.django_db


def test_suspended_organisation_gets_403_tenant_suspended_at_once(org) -> None:
    client = org.client()
    assert client.get("/api/v1/whoami").status_code == 200  # now cached
    organisation_suspend(actor=CLI, organisation=org.organisation, reason="unpaid invoices")
    response = client.get("/api/v1/whoami")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_suspended"
    event = AuditEvent.objects.get(organisation=org.organisation, action="organisation.suspended")
    assert event.details == {"reason": "unpaid invoices"}
    assert event.actor_label == "cli"


def test_resumed_organisation_is_served_again(org) -> None:
    organisation_suspend(actor=CLI, organisation=org.organisation, reason="abuse report")
    organisation_resume(actor=CLI, organisation=org.organisation)
    assert org.client().get("/api/v1/whoami").status_code == 200
    assert AuditEvent.objects.filter(organisation=org.organisation, action="organisation.resumed").exists()


def test_suspension_needs_a_reason_and_an_active_organisation(org) -> None:
    with pytest.raises(InvalidInput):
        organisation_suspend(actor=CLI, organisation=org.organisation, reason="  ")
    organisation_suspend(actor=CLI, organisation=org.organisation, reason="x")
    with pytest.raises(Conflict):
        organisation_suspend(actor=CLI, organisation=org.organisation, reason="again")


def test_delete_requires_confirmation_and_keeps_everything_without_it(org) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        organisation_delete(actor=CLI, organisation=org.organisation, confirm=False)
    assert excinfo.value.code == "confirm_required"
    assert schema_exists(org.organisation.schema_name)


def test_delete_drops_the_schema_and_the_keys_stop_working(org) -> None:
    client = org.client()
    assert client.get("/api/v1/whoami").status_code == 200
    organisation_delete(actor=CLI, organisation=org.organisation, confirm=True)
    connection.set_schema_to_public()
    assert not schema_exists(org.organisation.schema_name)
    org.organisation.refresh_from_db()
    assert org.organisation.status == "deleted"
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert AuditEvent.objects.filter(organisation_slug=org.organisation.slug, action="organisation.deleted").exists()
