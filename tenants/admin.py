"""Platform admin for organisations: find, inspect, suspend/resume (audited), support access.

Status changes go through the lifecycle services, so they are audited with the
staff user as actor and evict the API's cached organisation at once. Staff see
no tenant data here unless they open an explicit, time-limited and audited
support access session.
"""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.utils.html import format_html

from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import OutpostError
from tenants.models import Domain, Organisation
from tenants.services import organisation_resume, organisation_suspend

SUPPORT_ACCESS_SECONDS = 3600


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ("domain", "is_primary")


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000)


def _latest_usage(field: str) -> Subquery:
    from billing.models import UsageDaily

    return Subquery(UsageDaily.objects.filter(organisation=OuterRef("pk")).order_by("-date").values(field)[:1])


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "status", "plan", "documents", "devices", "mutations_today", "created_at")
    list_filter = ("status", "plan", "dedicated_queue")
    search_fields = ("slug", "name", "schema_name", "domains__domain", "memberships__user__email")
    readonly_fields = (
        "slug",
        "schema_name",
        "status",
        "status_reason",
        "provisioned_at",
        "suspended_at",
        "deleted_at",
        "created_at",
        "updated_at",
        "support_link",
    )
    fields = ("name", "plan", "dedicated_queue", *readonly_fields)
    inlines = [DomainInline]
    actions = ["suspend_selected", "resume_selected"]
    ordering = ("slug",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organisation]:
        return (
            Organisation.all_objects.select_related("plan")
            .annotate(
                _documents=_latest_usage("documents"),
                _devices=_latest_usage("devices"),
                _mutations=_latest_usage("mutations"),
            )
            .exclude(schema_name="public")
        )

    @admin.display(description="documents", ordering="_documents")
    def documents(self, obj: Any) -> int:
        return obj._documents or 0

    @admin.display(description="devices", ordering="_devices")
    def devices(self, obj: Any) -> int:
        return obj._devices or 0

    @admin.display(description="mutations (last day)", ordering="_mutations")
    def mutations_today(self, obj: Any) -> int:
        return obj._mutations or 0

    @admin.display(description="support access")
    def support_link(self, obj: Organisation) -> str:
        if obj.pk is None:
            return "-"
        url = reverse("admin:tenants_organisation_support", args=[obj.pk])
        return format_html('<a href="{}">Open support access (audited)…</a>', url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # organisations are created by sign-up or `manage.py org create`, which provision them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deletion drops data: `manage.py org delete SLUG --yes` or the owner's settings page

    def save_model(self, request: HttpRequest, obj: Organisation, form: forms.ModelForm, change: bool) -> None:
        from billing.services import organisation_change_plan

        actor = Actor.for_user(request.user)
        if "plan" in form.changed_data:
            new_plan = obj.plan_id
            obj.plan_id = form.initial["plan"]
            organisation_change_plan(actor=actor, organisation=obj, plan_slug=new_plan, reason="staff")
            obj.plan_id = new_plan
        others = [field for field in form.changed_data if field != "plan"]
        if others:
            super().save_model(request, obj, form, change)
            audit_record(
                actor=actor,
                action="organisation.updated",
                organisation=obj,
                target_type="organisation",
                target_id=obj.slug,
                details={field: str(form.cleaned_data[field]) for field in others},
            )
            from tenants.selectors import organisation_cache_evict

            organisation_cache_evict(obj.pk)

    def get_urls(self) -> list:
        custom = [
            path(
                "<int:organisation_id>/status/<str:change>/",
                self.admin_site.admin_view(self.status_view),
                name="tenants_organisation_status",
            ),
            path(
                "<int:organisation_id>/support/",
                self.admin_site.admin_view(self.support_view),
                name="tenants_organisation_support",
            ),
        ]
        return custom + super().get_urls()

    @admin.action(description="Suspend selected organisations (asks for a reason)")
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Organisation]) -> HttpResponse:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        first = queryset.first()
        if first is None:
            return HttpResponseRedirect(request.get_full_path())
        url = reverse("admin:tenants_organisation_status", args=[first.pk, "suspend"])
        return HttpResponseRedirect(f"{url}?ids={ids}")

    @admin.action(description="Resume selected organisations (asks for a reason)")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Organisation]) -> HttpResponse:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        first = queryset.first()
        if first is None:
            return HttpResponseRedirect(request.get_full_path())
        url = reverse("admin:tenants_organisation_status", args=[first.pk, "resume"])
        return HttpResponseRedirect(f"{url}?ids={ids}")

    def status_view(self, request: HttpRequest, organisation_id: int, change: str) -> HttpResponse:
        if change not in ("suspend", "resume") or not self.has_change_permission(request):
            raise PermissionDenied
        raw_ids = request.GET.get("ids") or str(organisation_id)
        ids = [int(x) for x in raw_ids.split(",") if x.isdigit()]
        organisations = list(Organisation.all_objects.filter(pk__in=ids))
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            actor = Actor.for_user(request.user)
            reason = form.cleaned_data["reason"]
            for organisation in organisations:
                try:
                    if change == "suspend":
                        organisation_suspend(actor=actor, organisation=organisation, reason=reason)
                    else:
                        organisation_resume(actor=actor, organisation=organisation, reason=reason)
                    self.message_user(request, f"{organisation.slug}: {change}d.", messages.SUCCESS)
                except OutpostError as exc:
                    self.message_user(request, f"{organisation.slug}: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:tenants_organisation_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{change.capitalize()} organisations",
            "organisations": organisations,
            "change": change,
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/tenants/organisation/status.html", context)

    def support_view(self, request: HttpRequest, organisation_id: int) -> HttpResponse:
        """Read-only view of an organisation's data, only inside an audited, time-limited session."""
        if not request.user.is_superuser and not request.user.has_perm("tenants.change_organisation"):
            raise PermissionDenied
        organisation = get_object_or_404(Organisation.objects, pk=organisation_id)
        session_key = f"support_access:{organisation.pk}"
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            from django.db import transaction

            with transaction.atomic():
                audit_record(
                    actor=Actor.for_user(request.user),
                    action="support.access_granted",
                    organisation=organisation,
                    target_type="organisation",
                    target_id=organisation.slug,
                    details={"reason": form.cleaned_data["reason"], "seconds": SUPPORT_ACCESS_SECONDS},
                )
            request.session[session_key] = time.time() + SUPPORT_ACCESS_SECONDS
            return HttpResponseRedirect(request.path)
        expires = request.session.get(session_key, 0)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": f"Support access: {organisation.slug}",
            "organisation": organisation,
            "form": form,
            "opts": self.model._meta,
            "active": expires > time.time(),
            "expires_in": int(max(0, expires - time.time()) // 60),
        }
        if context["active"]:
            context.update(self._support_data(organisation, request.GET.get("collection"), request.GET.get("after")))
        return render(request, "admin/tenants/organisation/support.html", context)

    @staticmethod
    def _support_data(organisation: Organisation, collection: str | None, after: str | None) -> dict[str, Any]:
        from sync import selectors
        from sync.errors import CollectionNotFound
        from tenants.context import tenant_context

        with tenant_context(organisation):
            collections = list(selectors.collection_list())
            documents: list[dict[str, Any]] = []
            next_cursor = None
            if collection:
                try:
                    documents, next_cursor = selectors.document_list(collection=collection, after=after, limit=50)
                except CollectionNotFound:
                    documents = []
            conflicts = list(selectors.conflict_list(status="open")[:20])
        return {
            "collections": collections,
            "collection": collection,
            "documents": documents,
            "next_cursor": next_cursor,
            "conflicts": conflicts,
        }


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain", "tenant__slug")
    list_select_related = ("tenant",)
