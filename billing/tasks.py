"""Billing periodic jobs: usage roll-up (and, with Stripe, usage reports and lapsed subscriptions).

Fan-out tasks run on the ``platform`` queue and send one task per organisation
(skipping organisations still provisioning) to that organisation's queue.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db import connection
from django.utils import timezone

from billing.queues import OrganisationTask, enqueue_for_organisation
from billing.usage import usage_rollup
from tenants.models import Organisation


@shared_task(name="billing.tasks.rollup_usage_all")
def rollup_usage_all() -> int:
    """Roll up usage of every organisation with a schema; returns how many were queued."""
    count = 0
    for organisation in Organisation.objects.all():
        enqueue_for_organisation(rollup_usage, organisation, organisation.pk)
        count += 1
    return count


@shared_task(name="billing.tasks.rollup_usage", base=OrganisationTask, bind=True)
def rollup_usage(self: OrganisationTask, organisation_id: int) -> None:
    """Copy today's (and, just after midnight, yesterday's) counters into UsageDaily."""
    organisation = Organisation.all_objects.get(pk=organisation_id)
    connection.set_schema_to_public()
    today = timezone.now().date()
    if timezone.now() - timedelta(minutes=30) < timezone.now().replace(hour=0, minute=0, second=0, microsecond=0):
        usage_rollup(organisation=organisation, day=today - timedelta(days=1))
    usage_rollup(organisation=organisation, day=today)
