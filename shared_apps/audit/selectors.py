"""Reading the audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from shared_apps.audit.models import AuditEvent
from tenants.models import Organisation


def audit_events_for(*, organisation: Organisation) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organisation=organisation).select_related("actor")
