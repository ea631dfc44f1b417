"""Platform admin for plans and billing.

Plans are editable (saving evicts the cached limits through the post_save
signal, and the edit is audited). Billing accounts, Stripe events, usage and
usage reports are read-only records of what Stripe and the roll-ups said; two
actions let staff re-read a subscription or process a stuck event again.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import BillingAccount, Plan, StripeEvent, UsageDaily, UsageReport
from billing.stripe_client import BillingProviderError
from billing.subscriptions import subscription_sync
from shared_apps.audit.services import Actor, audit_record


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "monthly_price_cents",
        "is_public",
        "queue_tier",
        "requests_per_minute",
        "max_documents",
        "stripe_price_id",
        "stripe_meter_event_name",
    )
    list_filter = ("is_public", "queue_tier")
    search_fields = ("slug", "name", "stripe_price_id")
    ordering = ("sort_order", "slug")
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> tuple[str, ...]:
        # Organisations reference plans by slug.
        return (*self.readonly_fields, "slug") if obj else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        # The admin's change view runs in a transaction, so the audit row commits with the plan.
        super().save_model(request, obj, form, change)
        changed = {field: form.cleaned_data.get(field) for field in form.changed_data}
        audit_record(
            actor=Actor.for_user(request.user),
            action="plan.updated" if change else "plan.created",
            target_type="plan",
            target_id=obj.slug,
            details={"after": {key: str(value) for key, value in changed.items()}},
        )


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "organisation",
        "subscription_status",
        "plan",
        "current_period_end",
        "cancel_at_period_end",
        "grace_until",
        "downgrade_at",
        "stripe_customer_id",
        "updated_at",
    )
    list_filter = ("subscription_status", "cancel_at_period_end", "plan")
    search_fields = ("organisation__slug", "organisation__name", "stripe_customer_id", "stripe_subscription_id")
    list_select_related = ("organisation", "plan")
    actions = ("resync_from_stripe",)

    @admin.action(description="Re-read the subscription from Stripe and apply it")
    def resync_from_stripe(self, request: HttpRequest, queryset: QuerySet[BillingAccount]) -> None:
        for account in queryset.exclude(stripe_subscription_id=""):
            try:
                outcome = subscription_sync(
                    account=account, subscription_id=account.stripe_subscription_id, actor=Actor.for_user(request.user)
                )
            except BillingProviderError as exc:
                self.message_user(request, f"{account.organisation}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{account.organisation}: {outcome}", messages.SUCCESS)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("stripe_id", "type", "organisation", "livemode", "received_at", "processed_at", "attempts")
    list_filter = ("type", "livemode", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("stripe_id", "type", "organisation__slug")
    date_hierarchy = "received_at"
    list_select_related = ("organisation",)
    actions = ("process_again",)

    @admin.action(description="Process again (unprocessed events only)")
    def process_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        from billing.tasks import process_stripe_event

        pending = list(queryset.filter(processed_at__isnull=True).values_list("pk", flat=True))
        for pk in pending:
            process_stripe_event.delay(pk)
        self.message_user(request, f"Queued {len(pending)} event(s).", messages.SUCCESS)


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdmin):
    list_display = ("organisation", "date", "pushes", "pulls", "mutations", "documents", "devices", "storage_bytes")
    list_filter = ("date",)
    search_fields = ("organisation__slug", "organisation__name")
    date_hierarchy = "date"
    list_select_related = ("organisation",)


@admin.register(UsageReport)
class UsageReportAdmin(ReadOnlyAdmin):
    list_display = ("organisation", "date", "metric", "value", "event_name", "identifier", "reported_at")
    list_filter = ("metric", "date")
    search_fields = ("organisation__slug", "identifier", "stripe_customer_id")
    date_hierarchy = "date"
    list_select_related = ("organisation",)
