"""Usage-based billing: each finished UTC day's mutations go to Stripe as one meter event.

A day is reported once it is settled (its roll-up is final an hour after
midnight) and while it is recent (the last few days, well inside Stripe's
35-day window), so a run that fails is simply retried by the next hourly run.
Two guards keep a day from being billed twice:

* a :class:`~billing.models.UsageReport` row, written after Stripe accepted the
  event: its presence means "never send again";
* a deterministic identifier ``outpost-<organisation id>-<yyyymmdd>-mutations``,
  sent as the meter event's ``identifier`` and as the request's
  ``Idempotency-Key``: a report whose answer was lost (so no row was written)
  is sent again with the same identifier, and Stripe drops the duplicate.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone

from billing.models import BillingAccount, Plan, UsageDaily, UsageReport
from billing.stripe_client import BillingProviderError, stripe_call, stripe_client
from tenants.models import Organisation

logger = logging.getLogger("outpost.billing")

METRIC = "mutations"
# The roll-up copies yesterday's counters until 00:30 UTC; report after that.
SETTLE_AFTER_MIDNIGHT = timedelta(hours=1)
# How far back an unreported day is still sent (Stripe accepts 35 days).
LOOKBACK_DAYS = 3


def usage_report_identifier(*, organisation_id: int, day: date, metric: str = METRIC) -> str:
    return f"outpost-{organisation_id}-{day:%Y%m%d}-{metric}"


def usage_report_days(*, now: datetime) -> list[date]:
    """The settled days still worth reporting at ``now``, oldest first."""
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=offset) for offset in range(LOOKBACK_DAYS, 0, -1)]
    return [day for day in days if now >= _day_end(day) + SETTLE_AFTER_MIDNIGHT]


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def _event_timestamp(day: date) -> int:
    # The day's last second: the usage belongs to the billing period that contains the end of the day.
    return int(datetime.combine(day, time(23, 59, 59), UTC).timestamp())


def usage_report_send(*, organisation: Organisation, now: datetime | None = None) -> dict[str, int]:
    """Send the organisation's unreported settled days to Stripe; returns counts of reported and failed days."""
    now = now or timezone.now()
    result = {"reported": 0, "failed": 0}
    account = BillingAccount.objects.filter(organisation=organisation).exclude(stripe_customer_id="").first()
    plan = Plan.objects.filter(slug=organisation.plan_id).only("stripe_meter_event_name").first()
    event_name = plan.stripe_meter_event_name if plan else ""
    if account is None or not event_name:
        return result
    days = usage_report_days(now=now)
    reported = set(
        UsageReport.objects.filter(organisation=organisation, metric=METRIC, date__in=days).values_list(
            "date", flat=True
        )
    )
    rows = UsageDaily.objects.filter(organisation=organisation, date__in=days, mutations__gt=0).order_by("date")
    client = stripe_client()
    for row in rows:
        if row.date in reported:
            continue
        identifier = usage_report_identifier(organisation_id=organisation.pk, day=row.date)
        params = {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": _event_timestamp(row.date),
            "payload": {"stripe_customer_id": account.stripe_customer_id, "value": str(row.mutations)},
        }
        try:
            stripe_call(
                lambda params=params, identifier=identifier: client.v1.billing.meter_events.create(
                    params=params, options={"idempotency_key": identifier}
                ),
                what="billing.meter_events.create",
            )
        except BillingProviderError as exc:
            logger.warning("usage report %s not sent (next run retries): %s", identifier, exc.message)
            result["failed"] += 1
            continue
        UsageReport.objects.get_or_create(
            identifier=identifier,
            defaults={
                "organisation": organisation,
                "date": row.date,
                "metric": METRIC,
                "value": row.mutations,
                "event_name": event_name,
                "stripe_customer_id": account.stripe_customer_id,
                "reported_at": timezone.now(),
            },
        )
        result["reported"] += 1
    return result
