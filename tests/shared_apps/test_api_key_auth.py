"""API key authentication: every way a key can be wrong gets the same 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from shared_apps.apikeys.models import ApiKey
from shared_apps.apikeys.services import api_key_create, api_key_revoke
from shared_apps.audit.services import CLI

pytestmark = pytest.mark.django_db


def call(header: str | None) -> tuple[int, dict]:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/whoami")
    return response.status_code, response.json()


def test_valid_key_answers_whoami(org) -> None:
    status, body = call(f"Bearer {org.key}")
    assert status == 200
    assert body == {
        "organisation": {"slug": "acme", "name": "Acme", "plan": "free"},
        "key": {"prefix": org.api_key.display_prefix, "name": "test", "scopes": ["admin", "sync:read", "sync:write"]},
    }


def test_missing_header_is_401_authentication_required() -> None:
    client = APIClient()
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"
    assert response["WWW-Authenticate"].startswith("Bearer")


def _variants(org) -> dict[str, str]:
    prefix, secret = org.key.split("_")[1], org.key.split("_")[2]
    wrong_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    return {
        "wrong_secret": f"Bearer opk_{prefix}_{wrong_secret}",
        "unknown_prefix": f"Bearer opk_zzzzzzzzzzzz_{secret}",
        "malformed": "Bearer not-a-key",
        "truncated": f"Bearer {org.key[:-1]}",
        "wrong_scheme": f"Basic {org.key}",
        "empty_bearer": "Bearer ",
        "sql_injection": "Bearer opk_' OR 1=1 --_x",
    }


def test_bad_keys_all_get_the_identical_401(org) -> None:
    bodies = set()
    for name, header in _variants(org).items():
        status, body = call(header)
        assert status == 401, name
        bodies.add(str(body))
    expected = {"code": "invalid_api_key", "message": "The API key is invalid, expired or revoked.", "details": {}}
    assert bodies == {str({"error": expected})}


def test_revoked_key_gets_the_same_401_on_the_next_request(org) -> None:
    assert call(f"Bearer {org.key}")[0] == 200  # cached now
    api_key_revoke(actor=CLI, api_key=org.api_key)
    status, body = call(f"Bearer {org.key}")
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"


def test_expired_key_gets_the_same_401(org) -> None:
    api_key, key = api_key_create(
        actor=CLI, organisation=org.organisation, name="short", expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert call(f"Bearer {key}")[0] == 200
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    from django.core.cache import caches

    caches["platform"].clear()
    status, body = call(f"Bearer {key}")
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")


def test_secret_is_stored_only_as_a_sha256_digest(org) -> None:
    import hashlib

    secret = org.key.split("_")[2]
    stored = ApiKey.objects.get(pk=org.api_key.pk)
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiKey.objects.filter(pk=stored.pk).values().first())


def test_last_used_is_recorded_but_not_written_on_every_request(org) -> None:
    assert ApiKey.objects.get(pk=org.api_key.pk).last_used_at is None
    call(f"Bearer {org.key}")
    first = ApiKey.objects.get(pk=org.api_key.pk).last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        call(f"Bearer {org.key}")
    assert not [q for q in queries.captured_queries if "UPDATE" in q["sql"]]
    assert ApiKey.objects.get(pk=org.api_key.pk).last_used_at == first


def test_cached_authentication_needs_no_public_schema_query(org) -> None:
    call(f"Bearer {org.key}")
    with CaptureQueriesContext(connection) as queries:
        status, _ = call(f"Bearer {org.key}")
    assert status == 200
    assert [q["sql"] for q in queries.captured_queries] == []


@pytest.mark.urls("tests.urls")
def test_scopes_are_enforced_per_method(make_organisation) -> None:
    reader = make_organisation(scopes=["sync:read"])
    client = reader.client()
    assert client.get("/api/v1/test/scoped").status_code == 200
    response = client.post("/api/v1/test/scoped", {"a": 1}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "insufficient_scope",
        "message": "The API key lacks the scope this endpoint needs.",
        "details": {"required_scope": "sync:write", "key_scopes": ["sync:read"]},
    }
    admin = make_organisation(scopes=["admin"])
    assert admin.client().post("/api/v1/test/scoped", {"a": 1}, format="json").status_code == 200
