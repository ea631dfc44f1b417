"""Billing periodic jobs: usage roll-up (and, with Stripe, usage reports and lapsed subscriptions).

Fan-out tasks run on the ``platform`` queue and send one task per organisation
(skipping organisations still provisioning) to that organisation's queue.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Task, shared_task
from django.db import connection
from django.utils import timezone

from billing.models import BillingAccount
from billing.queues import OrganisationTask, enqueue_for_organisation
from billing.stripe_client import BillingProviderError, billing_configured
from billing.stripe_events import stripe_event_process
from billing.subscriptions import billing_account_downgrade_if_lapsed
from billing.usage import usage_rollup
from billing.usage_reports import usage_report_send
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


# --- Stripe: webhook event processing, usage reports, lapsed subscriptions -----------------------------------


@shared_task(name="billing.tasks.process_stripe_event", bind=True, acks_late=True, max_retries=8)
def process_stripe_event(self: Task, stripe_event_pk: int) -> str:
    """Apply one stored Stripe event (platform queue); safe to run twice, retried while Stripe is unreachable."""
    connection.set_schema_to_public()
    try:
        return stripe_event_process(stripe_event_pk=stripe_event_pk)
    except BillingProviderError as exc:
        if not exc.transient:
            # Recorded on the event (last_error); staff can process it again from the admin.
            return f"failed: {exc.message}"
        raise self.retry(exc=exc, countdown=min(3600, 30 * 2**self.request.retries)) from exc


@shared_task(name="billing.tasks.report_usage_all")
def report_usage_all() -> int:
    """Queue a usage report for every organisation with a Stripe customer on a metered plan."""
    if not billing_configured():
        return 0
    organisations = list(
        Organisation.objects.filter(billing_account__isnull=False)
        .exclude(billing_account__stripe_customer_id="")
        .exclude(plan__stripe_meter_event_name="")
    )
    for organisation in organisations:
        enqueue_for_organisation(report_usage, organisation, organisation.pk)
    return len(organisations)


@shared_task(name="billing.tasks.report_usage", base=OrganisationTask, bind=True, acks_late=True)
def report_usage(self: OrganisationTask, organisation_id: int) -> dict[str, int]:
    """Send the organisation's unreported settled days to Stripe as meter events."""
    organisation = Organisation.all_objects.get(pk=organisation_id)
    connection.set_schema_to_public()
    return usage_report_send(organisation=organisation)


@shared_task(name="billing.tasks.downgrade_lapsed_all")
def downgrade_lapsed_all() -> int:
    """Queue a downgrade check for every organisation whose grace or paid period is over."""
    due = BillingAccount.objects.filter(downgrade_at__lte=timezone.now()).values_list("organisation_id", flat=True)
    organisations = list(Organisation.objects.filter(pk__in=due))
    for organisation in organisations:
        enqueue_for_organisation(downgrade_lapsed, organisation, organisation.pk)
    return len(organisations)


@shared_task(name="billing.tasks.downgrade_lapsed", base=OrganisationTask, bind=True, acks_late=True)
def downgrade_lapsed(self: OrganisationTask, organisation_id: int) -> str:
    """Re-read the subscription and move the organisation to free if it is still lapsed."""
    connection.set_schema_to_public()
    return billing_account_downgrade_if_lapsed(organisation_id=organisation_id)
