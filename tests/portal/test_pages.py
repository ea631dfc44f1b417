"""Every portal page renders for its members, with the organisation's real data."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_every_page_renders_for_an_owner(owner, with_data) -> None:
    slug = owner.organisation.slug
    from tenant_apps.syncstore.models import Conflict
    from tenants.context import tenant_context

    with tenant_context(owner.organisation):
        conflict_id = Conflict.objects.get().pk
    for url in [
        f"/o/{slug}/",
        f"/o/{slug}/keys/",
        f"/o/{slug}/members/",
        f"/o/{slug}/data/",
        f"/o/{slug}/data/todos/",
        f"/o/{slug}/data/todos/documents/",
        f"/o/{slug}/data/todos/documents/?id=t1",
        f"/o/{slug}/devices/",
        f"/o/{slug}/conflicts/",
        f"/o/{slug}/conflicts/?status=all",
        f"/o/{slug}/conflicts/{conflict_id}/",
        f"/o/{slug}/audit/",
        f"/o/{slug}/billing/",
        f"/o/{slug}/settings/",
        "/account/password/",
        "/organisations/new/",
    ]:
        response = owner.client.get(url)
        assert response.status_code == 200, (url, response.status_code)
