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
