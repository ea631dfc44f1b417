"""Reads of organisations, including the cached snapshot the API authenticates against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.db.models import QuerySet

from shared_apps.core.cache import cache_delete_on_commit, cache_get_many, cache_set
from tenants.models import Organisation

ORG_CACHE_SECONDS = 300


@dataclass(frozen=True)
class OrganisationSnapshot:
    """What a request needs to know about its organisation, without a query."""

    id: int
    slug: str
    name: str
    schema_name: str
    status: str
    plan_slug: str

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


def organisation_cache_key(organisation_id: int) -> str:
    return f"org:{organisation_id}"


# Other apps cache facts about an organisation under keys of their own (API keys
# cache their organisation's snapshot with them); they register a function that
# names those keys, so one eviction reaches every copy. tenants knows none of them.
ORGANISATION_CACHE_KEY_PROVIDERS: list[Callable[[int], list[str]]] = []


def organisation_cache_keys(organisation_id: int) -> list[str]:
    keys = [organisation_cache_key(organisation_id)]
    for provider in ORGANISATION_CACHE_KEY_PROVIDERS:
        keys.extend(provider(organisation_id))
    return keys


def organisation_cache_evict(organisation_id: int) -> None:
    """Evict every cached copy of the organisation's snapshot, now and after commit."""
    cache_delete_on_commit(*organisation_cache_keys(organisation_id))


def organisation_snapshot(*, organisation_id: int) -> OrganisationSnapshot | None:
    """The organisation's snapshot from the platform cache, else the database."""
    key = organisation_cache_key(organisation_id)
    cached = cache_get_many([key]).get(key)
    if cached is not None:
        return OrganisationSnapshot(**cached)
    organisation = Organisation.all_objects.filter(pk=organisation_id).first()
    if organisation is None:
        return None
    snapshot = snapshot_of(organisation)
    cache_set(key, asdict(snapshot), ORG_CACHE_SECONDS)
    return snapshot


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
