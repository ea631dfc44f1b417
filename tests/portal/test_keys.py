"""API keys in the portal: created with the secret shown once, revoked at once, rolled with a grace period."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone
from rest_framework.test import APIClient

from shared_apps.apikeys.models import ApiKey
from shared_apps.apikeys.selectors import api_key_cache_key
from shared_apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

KEY = re.compile(rb'<code id="new-key" data-secret>(opk_[a-z0-9]{12}_[A-Za-z0-9]{40})</code>')


def whoami(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/v1/whoami").status_code


def create(member, **fields) -> tuple[object, str | None]:
    body = {"name": "mobile app", "scopes": ["sync:read", "sync:write"], **fields}
    response = member.client.post(f"/o/{member.organisation.slug}/keys/", body)
    match = KEY.search(response.content)
    return response, match.group(1).decode() if match else None


def test_a_developer_creates_a_key_and_sees_the_secret_once(developer) -> None:
    response, key = create(developer)
    assert response.status_code == 200
    assert key is not None
    assert response["Cache-Control"] == "no-store"
    assert b"It will not be shown again" in response.content
    assert whoami(key) == 200
    api_key = ApiKey.objects.get(name="mobile app")
    assert api_key.scopes == ["sync:read", "sync:write"]
    assert api_key.created_by == developer.user
    assert api_key.expires_at is None
    listing = developer.client.get(f"/o/{developer.organisation.slug}/keys/")
    assert api_key.display_prefix.encode() in listing.content
    assert key.encode() not in listing.content
    event = AuditEvent.objects.get(action="api_key.created", target_id=api_key.display_prefix)
    assert event.actor == developer.user


def test_keys_can_expire(developer) -> None:
    _, _key = create(developer, expires_in_days="30")
    api_key = ApiKey.objects.get(name="mobile app")
    assert abs(api_key.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


def test_only_admins_create_admin_scoped_keys(developer, admin) -> None:
    refused, key = create(developer, scopes=["admin"])
    assert refused.status_code == 403
    assert key is None
    assert b"Only admins and owners can create keys with the admin scope." in refused.content
    assert not ApiKey.objects.filter(name="mobile app").exists()
    _, admin_key = create(admin, scopes=["admin"])
    assert admin_key is not None


def test_invalid_key_forms_are_refused(developer) -> None:
    response, key = create(developer, scopes=[])
    assert response.status_code == 400
    assert key is None
    response, key = create(developer, name="")
    assert response.status_code == 400


def test_revoking_takes_effect_on_the_next_request(developer, org) -> None:
    assert whoami(org.key) == 200  # cached now
    response = developer.client.post(f"/o/{org.organisation.slug}/keys/{org.api_key.display_prefix}/revoke/")
    assert response.status_code == 302
    assert whoami(org.key) == 401
    org.api_key.refresh_from_db()
    assert org.api_key.revoked_at is not None
    page = developer.client.get(response["Location"])
    assert b"is revoked; it stops working now." in page.content
    assert b'<span class="badge danger">revoked</span>' in page.content


def test_rolling_with_a_grace_period(admin, org) -> None:
    assert whoami(org.key) == 200  # the old key's record is cached
    before = timezone.now()
    response = admin.client.post(
        f"/o/{org.organisation.slug}/keys/{org.api_key.display_prefix}/roll/", {"grace_seconds": "3600"}
    )
    assert response.status_code == 200
    new_key = KEY.search(response.content).group(1).decode()
    new = ApiKey.objects.exclude(pk=org.api_key.pk).get()
    assert (new.name, new.scopes) == (org.api_key.name, org.api_key.scopes)
    org.api_key.refresh_from_db()
    assert org.api_key.revoked_at is None
    assert before + timedelta(hours=1) <= org.api_key.expires_at <= timezone.now() + timedelta(hours=1)
    # Both work during the grace period; the API sees the old key's new expiry at once (cache evicted).
    assert whoami(new_key) == 200
    assert whoami(org.key) == 200
    cached = caches["platform"].get(api_key_cache_key(org.api_key.prefix))
    assert cached["key"]["expires_at"] == org.api_key.expires_at.timestamp()
    event = AuditEvent.objects.get(action="api_key.rolled")
    assert event.target_id == org.api_key.display_prefix
    assert event.details["new_key"] == new.display_prefix
    assert event.details["grace_seconds"] == 3600


def test_rolling_without_grace_revokes_the_old_key(admin, org) -> None:
    response = admin.client.post(
        f"/o/{org.organisation.slug}/keys/{org.api_key.display_prefix}/roll/", {"grace_seconds": "0"}
    )
    new_key = KEY.search(response.content).group(1).decode()
    assert whoami(new_key) == 200
    assert whoami(org.key) == 401
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"api_key.created", "api_key.revoked", "api_key.rolled"} <= actions


def test_developers_cannot_roll_an_admin_scoped_key(developer, org) -> None:
    response = developer.client.post(
        f"/o/{org.organisation.slug}/keys/{org.api_key.display_prefix}/roll/", {"grace_seconds": "0"}
    )
    page = developer.client.get(response["Location"])
    assert b"Only admins and owners can create keys with the admin scope." in page.content
    assert ApiKey.objects.count() == 1
    assert whoami(org.key) == 200


def test_an_expiring_key_rolls_into_one_with_the_same_lifetime(developer) -> None:
    create(developer, expires_in_days="7")
    old = ApiKey.objects.get(name="mobile app")
    developer.client.post(
        f"/o/{developer.organisation.slug}/keys/{old.display_prefix}/roll/", {"grace_seconds": "86400"}
    )
    new = ApiKey.objects.filter(name="mobile app").exclude(pk=old.pk).get()
    assert abs((new.expires_at - new.created_at) - timedelta(days=7)) < timedelta(seconds=5)


def test_a_revoked_key_cannot_be_rolled(developer, org) -> None:
    slug = org.organisation.slug
    developer.client.post(f"/o/{slug}/keys/{org.api_key.display_prefix}/revoke/")
    response = developer.client.post(f"/o/{slug}/keys/{org.api_key.display_prefix}/roll/", {"grace_seconds": "0"})
    assert response.status_code == 302
    assert b"Only an active key can be rolled." in developer.client.get(response["Location"]).content
    assert ApiKey.objects.count() == 1


def test_keys_of_another_organisation_are_404(developer, other_org) -> None:
    slug = developer.organisation.slug
    prefix = other_org.api_key.display_prefix
    assert developer.client.post(f"/o/{slug}/keys/{prefix}/revoke/").status_code == 404
    assert developer.client.post(f"/o/{slug}/keys/{prefix}/roll/", {"grace_seconds": "0"}).status_code == 404
    assert whoami(other_org.key) == 200


def test_the_key_list_costs_a_fixed_number_of_queries(developer, org, django_assert_max_num_queries) -> None:
    for number in range(5):
        create(developer, name=f"key {number}")
    developer.client.get(f"/o/{org.organisation.slug}/keys/")  # the session remembers the organisation
    # search_path, session, user, membership, keys with their creators, the header's switcher
    with django_assert_max_num_queries(6):
        response = developer.client.get(f"/o/{org.organisation.slug}/keys/")
    assert response.content.count(b"<tr data-key=") == 6
