"""Staff view of API keys: never the secret or its digest; revoking goes through the service."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from shared_apps.apikeys.models import ApiKey
from shared_apps.apikeys.services import api_key_revoke
from shared_apps.audit.services import Actor


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("display_prefix", "name", "organisation", "scopes", "created_at", "last_used_at", "state")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("prefix", "name", "organisation__slug")
    list_select_related = ("organisation", "created_by")
    fields = (
        "display_prefix",
        "name",
        "organisation",
        "scopes",
        "created_by_label",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    readonly_fields = fields
    actions = ["revoke_selected"]

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        if obj.revoked_at:
            return "revoked"
        return "active" if obj.is_active else "expired"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key's secret must be shown to its owner once: create keys in the portal or the CLI

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = Actor.for_user(request.user)
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(actor=actor, api_key=api_key, reason="revoked by staff")
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
