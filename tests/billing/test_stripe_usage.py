"""Usage reports: a settled day's mutations go to Stripe once, under a deterministic identifier."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from billing.models import BillingAccount, UsageDaily, UsageReport
from billing.tasks import report_usage_all
from billing.usage_reports import usage_report_days, usage_report_send
from tests.billing.stripe_stub import stripe_stub_fixture  # noqa: F401 - provides the stripe_stub fixture

METER = "outpost_mutations"
EVENTS = "/v1/billing/meter_events"


@pytest.fixture
def metered(org, plan_limits):
    """Acme is on pro, a plan with a meter, and has a Stripe customer."""
    from billing.services import organisation_change_plan
    from shared_apps.audit.services import CLI

    plan_limits("pro", stripe_price_id="price_pro", stripe_meter_event_name=METER)
    organisation_change_plan(actor=CLI, organisation=org.organisation, plan_slug="pro")
    org.organisation.refresh_from_db()
    BillingAccount.objects.create(organisation=org.organisation, stripe_customer_id="cus_acme")
    return org


def identifier(org, day) -> str:
    return f"outpost-{org.organisation.pk}-{day:%Y%m%d}-mutations"


def test_the_previous_day_is_reported_as_a_meter_event_once(metered, stripe_stub) -> None:
    now = datetime.combine(timezone.now().date(), time(2, 5), UTC)
    yesterday = now.date() - timedelta(days=1)
    UsageDaily.objects.create(organisation=metered.organisation, date=yesterday, mutations=1234)
    UsageDaily.objects.create(organisation=metered.organisation, date=now.date(), mutations=99)  # not over yet

    assert usage_report_send(organisation=metered.organisation, now=now) == {"reported": 1, "failed": 0}

    [sent] = stripe_stub.calls("POST", EVENTS)
    assert sent.form == {
        "event_name": METER,
        "identifier": identifier(metered, yesterday),
        "timestamp": str(int(datetime.combine(yesterday, time(23, 59, 59), UTC).timestamp())),
        "payload[stripe_customer_id]": "cus_acme",
        "payload[value]": "1234",
    }
    assert sent.idempotency_key == identifier(metered, yesterday)
    report = UsageReport.objects.get()
    assert (report.date, report.metric, report.value, report.identifier) == (
        yesterday,
        "mutations",
        1234,
        identifier(metered, yesterday),
    )

    # The next hourly runs send nothing more.
    assert usage_report_send(organisation=metered.organisation, now=now + timedelta(hours=1)) == {
        "reported": 0,
        "failed": 0,
    }
    assert len(stripe_stub.calls("POST", EVENTS)) == 1


def test_the_periodic_task_fans_out_and_a_second_run_sends_nothing(metered, make_organisation, stripe_stub) -> None:
    day = timezone.now().date() - timedelta(days=2)  # settled whatever the time of day
    UsageDaily.objects.create(organisation=metered.organisation, date=day, mutations=500)
    # Not reported: no Stripe customer; and a customer on a plan without a meter.
    other = make_organisation()
    UsageDaily.objects.create(organisation=other.organisation, date=day, mutations=7)
    free = make_organisation()
    BillingAccount.objects.create(organisation=free.organisation, stripe_customer_id="cus_free")
    UsageDaily.objects.create(organisation=free.organisation, date=day, mutations=7)

    assert report_usage_all() == 1
    assert report_usage_all() == 1
    assert [r.form["identifier"] for r in stripe_stub.calls("POST", EVENTS)] == [identifier(metered, day)]
    assert UsageReport.objects.count() == 1


def test_a_failed_report_is_retried_with_the_same_identifier(metered, stripe_stub) -> None:
    day = timezone.now().date() - timedelta(days=2)
    UsageDaily.objects.create(organisation=metered.organisation, date=day, mutations=42)
    stripe_stub.fail_next("POST", EVENTS, status=500)

    report_usage_all()
    assert not UsageReport.objects.exists()
    report_usage_all()

    attempts = stripe_stub.calls("POST", EVENTS)
    assert len(attempts) == 2
    assert {a.form["identifier"] for a in attempts} == {identifier(metered, day)}
    assert {a.idempotency_key for a in attempts} == {identifier(metered, day)}
    assert len(stripe_stub.meter_events) == 1
    assert UsageReport.objects.get().value == 42


def test_a_report_whose_answer_was_lost_is_not_billed_twice(metered, stripe_stub) -> None:
    day = timezone.now().date() - timedelta(days=2)
    UsageDaily.objects.create(organisation=metered.organisation, date=day, mutations=42)
    report_usage_all()
    # Stripe accepted the event but Outpost never recorded it (say the worker died before the commit).
    UsageReport.objects.all().delete()

    report_usage_all()

    assert len(stripe_stub.calls("POST", EVENTS)) == 2
    assert len(stripe_stub.meter_events) == 1  # the same identifier: Stripe keeps one event
    assert UsageReport.objects.count() == 1


def test_nothing_is_reported_without_stripe(metered, settings) -> None:
    settings.STRIPE_SECRET_KEY = ""
    UsageDaily.objects.create(organisation=metered.organisation, date=timezone.now().date() - timedelta(days=2))
    assert report_usage_all() == 0


def test_days_are_reported_once_settled_and_while_recent() -> None:
    today = datetime(2026, 3, 10, tzinfo=UTC)
    assert usage_report_days(now=today + timedelta(minutes=30)) == [datetime(2026, 3, d).date() for d in (7, 8)]
    assert usage_report_days(now=today + timedelta(hours=1, minutes=5)) == [
        datetime(2026, 3, d).date() for d in (7, 8, 9)
    ]
