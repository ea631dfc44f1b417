"""Plans and their limits (public schema)."""

from __future__ import annotations

from django.db import models

from shared_apps.core.models import TimestampedModel


class QueueTier(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"
    BUSINESS = "business", "Business"
    ENTERPRISE = "enterprise", "Enterprise"


class Plan(TimestampedModel):
    """A plan and every limit Outpost enforces for organisations on it.

    Read limits through :func:`billing.selectors.plan_limits` (cached); saving a
    plan through :func:`billing.services.plan_update` or the admin evicts the cache.
    """

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True, default="")
    monthly_price_cents = models.PositiveIntegerField(default=0)
    is_public = models.BooleanField(default=True, help_text="Offered for self-service upgrade.")
    sort_order = models.PositiveSmallIntegerField(default=0)
    stripe_price_id = models.CharField(max_length=100, blank=True, default="", help_text="Recurring price (Checkout).")
    stripe_meter_event_name = models.CharField(
        max_length=100, blank=True, default="", help_text="Meter event name for usage-based billing (mutations)."
    )
    requests_per_minute = models.PositiveIntegerField()
    burst = models.PositiveIntegerField()
    max_documents = models.BigIntegerField()
    max_devices = models.PositiveIntegerField()
    max_document_bytes = models.PositiveIntegerField()
    max_batch_mutations = models.PositiveIntegerField()
    tombstone_retention_days = models.PositiveIntegerField()
    queue_tier = models.CharField(max_length=20, choices=QueueTier.choices, default=QueueTier.FREE)
    max_concurrent_tasks = models.PositiveSmallIntegerField(default=2)

    class Meta:
        ordering = ["sort_order", "slug"]
        constraints = [
            models.CheckConstraint(condition=models.Q(burst__gte=1), name="plan_burst_positive"),
            models.CheckConstraint(condition=models.Q(requests_per_minute__gte=1), name="plan_rpm_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class UsageDaily(models.Model):
    """One organisation's usage on one day (UTC), rolled up from Redis counters.

    ``pushes``/``pulls``/``mutations`` are the day's totals; ``documents``,
    ``devices`` and ``storage_bytes`` are the state at the last roll-up.
    """

    organisation = models.ForeignKey("tenants.Organisation", on_delete=models.CASCADE, related_name="usage_days")
    date = models.DateField()
    pushes = models.BigIntegerField(default=0)
    pulls = models.BigIntegerField(default=0)
    mutations = models.BigIntegerField(default=0)
    documents = models.BigIntegerField(default=0)
    devices = models.BigIntegerField(default=0)
    storage_bytes = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date"]
        constraints = [models.UniqueConstraint(fields=["organisation", "date"], name="usage_daily_unique_org_date")]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.date}"


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses (``""`` while an organisation has never subscribed)."""

    NONE = "", "No subscription"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"
    UNPAID = "unpaid", "Unpaid"
    PAUSED = "paused", "Paused"


class BillingAccount(TimestampedModel):
    """An organisation's Stripe customer and the last subscription state read from Stripe.

    Written only by :mod:`billing.subscriptions` (from Stripe's current state,
    never from an event payload). ``downgrade_at`` is when the organisation
    drops to the free plan unless the subscription recovers; the periodic task
    ``billing.tasks.downgrade_lapsed_all`` acts on it.
    """

    organisation = models.OneToOneField(
        "tenants.Organisation", on_delete=models.CASCADE, related_name="billing_account"
    )
    stripe_customer_id = models.CharField(max_length=100, blank=True, default="")
    stripe_subscription_id = models.CharField(max_length=100, blank=True, default="", db_index=True)
    subscription_status = models.CharField(
        max_length=30, choices=SubscriptionStatus.choices, blank=True, default=SubscriptionStatus.NONE
    )
    stripe_price_id = models.CharField(max_length=100, blank=True, default="")
    plan = models.ForeignKey(
        Plan,
        to_field="slug",
        db_column="plan_slug",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The plan the subscription's price maps to.",
    )
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    grace_until = models.DateTimeField(null=True, blank=True)
    downgrade_at = models.DateTimeField(null=True, blank=True, db_index=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last read of the subscription from Stripe.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_customer_id"],
                condition=~models.Q(stripe_customer_id=""),
                name="billing_account_unique_customer",
            )
        ]

    def __str__(self) -> str:
        return f"{self.organisation_id} {self.stripe_customer_id or '(no customer)'}"


class StripeEvent(models.Model):
    """Every webhook event Stripe delivered, once (unique by Stripe's event id).

    A redelivery finds the row and does nothing more; processing (in a Celery
    task, after commit) sets ``processed_at`` in the same transaction as its
    effects, so an event is either fully applied or still pending.
    """

    stripe_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    organisation = models.ForeignKey(
        "tenants.Organisation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=300, blank=True, default="")
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["stripe_id"], name="stripe_event_unique_id")]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type}"


class UsageReport(models.Model):
    """One usage figure sent to Stripe as a meter event; its presence means "do not send again".

    ``identifier`` is deterministic (organisation, day, metric), and is sent as
    the meter event's identifier and idempotency key, so a report retried after
    a lost response is not billed twice.
    """

    organisation = models.ForeignKey("tenants.Organisation", on_delete=models.CASCADE, related_name="usage_reports")
    date = models.DateField()
    metric = models.CharField(max_length=50)
    value = models.BigIntegerField()
    event_name = models.CharField(max_length=100)
    stripe_customer_id = models.CharField(max_length=100)
    identifier = models.CharField(max_length=100)
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["-date", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["identifier"], name="usage_report_unique_identifier"),
            models.UniqueConstraint(fields=["organisation", "date", "metric"], name="usage_report_unique_org_day"),
        ]

    def __str__(self) -> str:
        return self.identifier
