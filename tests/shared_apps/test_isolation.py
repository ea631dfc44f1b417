"""A key reaches its own organisation's schema and nothing else, whatever the request says."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


class SchemaSpy:
    """Records the schema the connection is on while the view runs."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.seen.append(connection.schema_name)
        return execute(sql, params, many, context)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"HTTP_HOST": "globex.outpost.localhost"},
        {"HTTP_X_TENANT": "globex", "HTTP_X_ORGANISATION": "org_globex"},
        {"QUERY_STRING": "schema=org_globex&organisation=globex"},
    ],
)
def test_key_of_acme_only_ever_answers_as_acme(org, other_org, extra: dict, settings) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    client = APIClient()
    response = client.get("/api/v1/whoami", HTTP_AUTHORIZATION=f"Bearer {org.key}", **extra)
    assert response.status_code == 200
    assert response.json()["organisation"]["slug"] == "acme"


def test_each_key_switches_to_its_own_schema_and_back_to_public(org, other_org, settings) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    from django.urls import resolve

    seen: dict[str, str] = {}
    view = resolve("/api/v1/whoami").func.view_class
    original = view.get

    def spying_get(self, request):
        seen[request.auth.organisation.slug] = connection.schema_name
        return original(self, request)

    view.get = spying_get
    try:
        for keyed in (org, other_org, org):
            assert keyed.client().get("/api/v1/whoami").status_code == 200
            assert connection.schema_name == "public"  # reset after every request
    finally:
        view.get = original
    assert seen == {"acme": "org_acme", "globex": "org_globex"}


def test_organisations_live_in_separate_schemas(org, other_org) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'org_%%'")
        schemas = {row[0] for row in cursor.fetchall()}
    assert {"org_acme", "org_globex"} <= schemas
