"""Organisations (the tenants) and their domains, in the public schema."""

from __future__ import annotations

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from shared_apps.core.models import TimestampedModel


class OrganisationStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    DELETED = "deleted", "Deleted"


class WithSchemaManager(models.Manager["Organisation"]):
    """Organisations that have a schema (active or suspended).

    django-tenants iterates ``Organisation.objects`` to migrate every tenant, so
    this manager keeps organisations still provisioning or already deleted
    (no schema) out of ``migrate_schemas``. Outpost's own code uses
    ``all_objects``.
    """

    def get_queryset(self) -> models.QuerySet[Organisation]:
        return super().get_queryset().filter(status__in=[OrganisationStatus.ACTIVE, OrganisationStatus.SUSPENDED])


class Organisation(TenantMixin, TimestampedModel):
    """A customer organisation; its sync data lives in its own PostgreSQL schema.

    The row outlives the schema: a deleted organisation keeps its row (status
    ``deleted``) so the audit log still names it.
    """

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    status = models.CharField(
        max_length=20, choices=OrganisationStatus.choices, default=OrganisationStatus.PROVISIONING, db_index=True
    )
    plan = models.ForeignKey(
        "billing.Plan",
        to_field="slug",
        db_column="plan_slug",
        on_delete=models.PROTECT,
        default="free",
        related_name="organisations",
    )
    # Staff can give an organisation its own Celery queue (tenant.dedicated.<slug>).
    dedicated_queue = models.BooleanField(default=False)
    status_reason = models.TextField(blank=True, default="")
    provisioned_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = WithSchemaManager()
    all_objects = models.Manager()

    # Schemas are created by tenants.provisioning inside the provisioning
    # transaction, never implicitly by save(); and never dropped implicitly.
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["slug"]
        default_manager_name = "all_objects"
        base_manager_name = "all_objects"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=[s.value for s in OrganisationStatus]),
                name="organisation_status_valid",
            )
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == OrganisationStatus.ACTIVE


class Domain(DomainMixin):
    """A host name that belongs to an organisation (``<slug>.<base domain>`` by default)."""

    class Meta:
        ordering = ["domain"]


class SchemaScript(models.Model):
    """The recorded statements that build a tenant schema, per migration fingerprint.

    See :mod:`tenants.provisioning`. Rows for old fingerprints are harmless and
    are replaced naturally as releases change the migrations.
    """

    key = models.CharField(max_length=64, unique=True)
    statements = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key[:12]
