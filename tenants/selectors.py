"""Reads of organisations, including the cached snapshot the API authenticates against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.db.models import QuerySet

from shared_apps.core.cache import cache_delete_on_commit
from tenants.models import Organisation


@dataclass(frozen=True)
class OrganisationSnapshot:
    """What a request needs to know about its organisation, without a query."""

    id: int
    slug: str
    name: str
    schema_name: str
    status: str
    plan_slug: str

    @cached_property
    def tenant(self) -> Organisation:
        """An unsaved Organisation carrying enough to switch the connection's schema, built once per
        snapshot (snapshots are immutable; authentication reuses them across requests)."""
        return self.as_tenant()

    def as_tenant(self) -> Organisation:
        """An unsaved Organisation carrying enough to switch the connection's schema."""
        return Organisation(
            id=self.id,
            slug=self.slug,
            name=self.name,
            schema_name=self.schema_name,
            status=self.status,
            plan_id=self.plan_slug,
        )


# Snapshots of an organisation are cached by the apps that read them, under keys
# of their own (API keys cache their organisation's snapshot with them); they
# register a function naming those keys, so one eviction reaches every copy.
# tenants knows none of them.
ORGANISATION_CACHE_KEY_PROVIDERS: list[Callable[[int], list[str]]] = []


def organisation_cache_keys(organisation_id: int) -> list[str]:
    keys: list[str] = []
    for provider in ORGANISATION_CACHE_KEY_PROVIDERS:
        keys.extend(provider(organisation_id))
    return keys


def organisation_cache_evict(organisation_id: int) -> None:
    """Evict every cached copy of the organisation's snapshot, now and after commit."""
    cache_delete_on_commit(*organisation_cache_keys(organisation_id))


def snapshot_of(organisation: Organisation) -> OrganisationSnapshot:
    return OrganisationSnapshot(
        id=organisation.pk,
        slug=organisation.slug,
        name=organisation.name,
        schema_name=organisation.schema_name,
        status=organisation.status,
        plan_slug=organisation.plan_id,
    )


def organisation_get(*, slug: str) -> Organisation | None:
    return Organisation.all_objects.filter(slug=slug).first()


def organisation_list(*, include_deleted: bool = False) -> QuerySet[Organisation]:
    queryset = Organisation.all_objects.exclude(schema_name="public")
    if not include_deleted:
        queryset = queryset.exclude(status="deleted")
    return queryset.order_by("slug")
