"""Sync periodic jobs, fanned out per organisation onto its own queue."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from billing.queues import OrganisationTask, enqueue_for_organisation
from billing.selectors import plan_limits
from sync.services import tombstones_purge
from tenant_apps.syncstore.models import Device, IdempotencyRecord
from tenants.models import Organisation

# Devices unseen this long are removed (they re-register on their next sync).
STALE_DEVICE_DAYS = 180
# Retries older than this are not expected; their stored results can go.
IDEMPOTENCY_RETENTION_DAYS = 30


@shared_task(name="sync.tasks.purge_tombstones_all")
def purge_tombstones_all() -> int:
    organisations = list(Organisation.objects.all())
    for organisation in organisations:
        enqueue_for_organisation(purge_tombstones, organisation, organisation.pk)
    return len(organisations)


@shared_task(name="sync.tasks.purge_tombstones", base=OrganisationTask, bind=True, ignore_result=False)
def purge_tombstones(self: OrganisationTask, organisation_id: int) -> dict[str, int]:
    """Purge tombstones older than the plan's retention (runs in the organisation's schema)."""
    organisation = Organisation.all_objects.get(pk=organisation_id)
    retention = plan_limits(slug=organisation.plan_id).tombstone_retention_days
    return tombstones_purge(older_than=timedelta(days=retention))


@shared_task(name="sync.tasks.cleanup_all")
def cleanup_all() -> int:
    organisations = list(Organisation.objects.all())
    for organisation in organisations:
        enqueue_for_organisation(cleanup, organisation, organisation.pk)
    return len(organisations)


@shared_task(name="sync.tasks.cleanup", base=OrganisationTask, bind=True)
def cleanup(self: OrganisationTask, organisation_id: int) -> dict[str, int]:
    """Remove stale devices (never revoked ones: revocations must stick) and old idempotency records."""
    now = timezone.now()
    devices, _ = Device.objects.filter(
        last_seen_at__lt=now - timedelta(days=STALE_DEVICE_DAYS), revoked_at__isnull=True
    ).delete()
    records, _ = IdempotencyRecord.objects.filter(
        created_at__lt=now - timedelta(days=IDEMPOTENCY_RETENTION_DAYS)
    ).delete()
    return {"devices": devices, "idempotency_records": records}
