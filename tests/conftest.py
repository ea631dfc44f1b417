"""Shared fixtures: organisations with real schemas, API keys, an API client.

Tests run on a real PostgreSQL and a real Redis. Provisioning is transactional
DDL, so an organisation made inside a ``db`` test vanishes with the test's
rollback, schema and all. Tests that need committed data (threads, other
processes) use ``committed_organisation``, which drops its schema afterwards.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.core.cache import caches
from django.db import connection
from rest_framework.test import APIClient

from billing.selectors import plan_limits_forget
from shared_apps.apikeys.models import DEFAULT_SCOPES, ApiKey
from shared_apps.apikeys.services import api_key_create
from shared_apps.audit.services import CLI
from tenants import provisioning
from tenants.models import Organisation
from tenants.services import organisation_create_and_provision


def ensure_plans() -> None:
    """Transactional tests truncate every table, seeded plans included; put them back."""
    from django.apps import apps

    seed = importlib.import_module("billing.migrations.0002_seed_plans").seed
    seed(apps, None)


@dataclass
class KeyedOrganisation:
    organisation: Organisation
    key: str
    api_key: ApiKey

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key}")
        return client


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Every test starts with an empty cache / rate-limit state."""
    caches["default"].clear()
    plan_limits_forget()
    yield
    connection.set_schema_to_public()


@pytest.fixture
def plan_limits(db: None) -> Callable[..., None]:
    """Change the limits of a plan for this test (``plan_limits(max_devices=1)``; default plan: free)."""
    from billing.models import Plan

    def change(slug: str = "free", **fields: object) -> None:
        ensure_plans()
        Plan.objects.filter(slug=slug).update(**fields)
        caches["platform"].clear()
        plan_limits_forget()

    return change


@pytest.fixture
def make_organisation(db: None) -> Callable[..., KeyedOrganisation]:
    """Factory: an active organisation with a real schema and a key with the given scopes."""
    counter = iter(range(1, 10_000))

    def make(name: str | None = None, *, scopes: list[str] | None = None, slug: str | None = None) -> KeyedOrganisation:
        ensure_plans()
        number = next(counter)
        organisation = organisation_create_and_provision(
            actor=CLI, name=name or f"Org {number}", slug=slug or f"org-{number}-test"
        )
        api_key, key = api_key_create(
            actor=CLI, organisation=organisation, name="test", scopes=scopes or [*DEFAULT_SCOPES, "admin"]
        )
        return KeyedOrganisation(organisation, key, api_key)

    return make


@pytest.fixture
def org(make_organisation: Callable[..., KeyedOrganisation]) -> KeyedOrganisation:
    return make_organisation("Acme", slug="acme")


@pytest.fixture
def other_org(make_organisation: Callable[..., KeyedOrganisation]) -> KeyedOrganisation:
    return make_organisation("Globex", slug="globex")


@pytest.fixture
def api(org: KeyedOrganisation) -> APIClient:
    return org.client()


@pytest.fixture
def committed_organisation(transactional_db: None) -> Iterator[Callable[..., KeyedOrganisation]]:
    """Like ``make_organisation`` but committed, for tests with several connections."""
    made: list[Organisation] = []
    counter = iter(range(1, 10_000))

    def make(*, scopes: list[str] | None = None) -> KeyedOrganisation:
        ensure_plans()
        number = next(counter)
        organisation = organisation_create_and_provision(actor=CLI, name=f"Committed {number}", slug=f"c-{number}-org")
        made.append(organisation)
        api_key, key = api_key_create(
            actor=CLI, organisation=organisation, name="test", scopes=scopes or [*DEFAULT_SCOPES, "admin"]
        )
        return KeyedOrganisation(organisation, key, api_key)

    yield make
    connection.set_schema_to_public()
    for organisation in made:
        provisioning.drop_tenant_schema(organisation.schema_name)
