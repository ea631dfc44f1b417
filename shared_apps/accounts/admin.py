"""Users and memberships in the admin. Membership changes go through the audited services."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from shared_apps.accounts.models import Membership, User
from shared_apps.accounts.services import membership_add, membership_change_role, membership_remove
from shared_apps.audit.services import Actor


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("organisation", "role", "created_at")
    readonly_fields = ("organisation", "role", "created_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "full_name", "is_staff", "is_active", "email_verified_at", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "full_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name", "email_verified_at")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    inlines = [MembershipInline]


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ("user", "organisation", "role")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organisation", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__email", "organisation__slug")
    list_select_related = ("user", "organisation")
    form = MembershipForm

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> tuple[str, ...]:
        return ("user", "organisation") if obj else ()

    def save_model(self, request: HttpRequest, obj: Membership, form: forms.ModelForm, change: bool) -> None:
        actor = Actor.for_user(request.user)
        if change:
            membership_change_role(actor=actor, membership=obj, role=form.cleaned_data["role"])
        else:
            saved = membership_add(actor=actor, organisation=obj.organisation, user=obj.user, role=obj.role)
            obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_remove(actor=Actor.for_user(request.user), membership=obj)

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return obj is not None and super().has_delete_permission(request, obj)
