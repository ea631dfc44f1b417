"""The audit log: who did what to which organisation, in the public schema."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One recorded action. Rows are only ever inserted, never updated.

    ``actor_label`` keeps a readable actor even when there is no user
    (``cli``, ``system``, ``api_key:opk_ab12…``) or the user is later deleted;
    ``organisation_slug`` keeps the organisation's name after deletion.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    organisation = models.ForeignKey(
        "tenants.Organisation", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    organisation_slug = models.CharField(max_length=50, blank=True, default="")
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=50, blank=True, default="")
    target_id = models.CharField(max_length=200, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organisation", "-created_at"], name="audit_org_created_idx")]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_type}:{self.target_id}"
        )
