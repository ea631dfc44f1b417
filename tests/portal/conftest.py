"""Portal fixtures: members of real organisations, logged-in test clients, data in a tenant schema."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client

from shared_apps.accounts.models import Membership, User
from shared_apps.accounts.services import membership_add
from shared_apps.audit.services import CLI
from tenants.models import Organisation
from tests.conftest import KeyedOrganisation
from tests.sync.helpers import mutation, push_ok

PASSWORD = "correct-horse-battery-staple"
_numbers = itertools.count(1)


@dataclass
class Member:
    user: User
    membership: Membership
    client: Client

    @property
    def organisation(self) -> Organisation:
        return self.membership.organisation


@pytest.fixture
def make_member(db: None, org: KeyedOrganisation) -> Callable[..., Member]:
    """Factory: a user with ``role`` in ``organisation`` (default: the ``org`` fixture), logged in on its own client."""

    def make(role: str, *, organisation: Organisation | None = None, email: str | None = None) -> Member:
        email = email or f"{role}{next(_numbers)}@example.test"
        user = User.objects.filter(email=email).first() or User.objects.create_user(email, PASSWORD)
        membership = membership_add(actor=CLI, organisation=organisation or org.organisation, user=user, role=role)
        client = Client()
        client.force_login(user)
        return Member(user, membership, client)

    return make


@pytest.fixture
def owner(make_member: Callable[..., Member]) -> Member:
    return make_member("owner", email="owner@acme.test")


@pytest.fixture
def admin(make_member: Callable[..., Member]) -> Member:
    return make_member("admin", email="admin@acme.test")


@pytest.fixture
def developer(make_member: Callable[..., Member]) -> Member:
    return make_member("developer", email="dev@acme.test")


@pytest.fixture
def viewer(make_member: Callable[..., Member]) -> Member:
    return make_member("viewer", email="viewer@acme.test")


@pytest.fixture
def with_data(org: KeyedOrganisation) -> KeyedOrganisation:
    """Acme with two documents, a device, and one open conflict on todos/t1 (manual policy)."""
    client = org.client()
    push_ok(client, [mutation("t1", data={"title": "Buy milk", "done": False}), mutation("t2", data={"title": "Two"})])
    response = client.put("/api/v1/collections/todos", {"conflict_policy": "manual"}, format="json")
    assert response.status_code == 200, response.content
    push_ok(client, [mutation("t1", "patch", data={"done": True}, base_version=1)], device_id="device-1")
    results = push_ok(
        client, [mutation("t1", "patch", data={"title": "Buy oat milk"}, base_version=1)], device_id="phone-2"
    )
    assert results[0]["status"] == "conflict", results
    return org
