"""Admission: the key lookup, the rate limit and the usage counter of an API request in one Redis call.

These tests pin what the single round trip must never give up: nothing is spent for a key whose secret is
wrong (knowing a key's public prefix must not drain its organisation's budget), usage is counted only for
admitted requests the key may make, and every fallback (cold plan entry, cache miss) still admits correctly.
"""

from __future__ import annotations

import orjson
import pytest
import redis
from django.core.cache import caches
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from billing import ratelimit
from billing.selectors import plan_cache_key
from billing.usage import usage_today
from shared_apps.apikeys.selectors import api_key_cache_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limiter_on(settings) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_FAIL_OPEN = True
    ratelimit._unavailable_until.clear()


def entry_key(prefix: str) -> str:
    """The full Redis key of an API key's platform-cache entry, as the admission script reads it."""
    return caches["platform"].make_key(api_key_cache_key(prefix))


def redis_commands(call) -> list[str]:
    """The Redis commands ``call()`` sends, by name."""
    seen: list[str] = []
    original = redis.Redis.execute_command

    def counting(self, *args, **options):
        seen.append(str(args[0]).upper())
        return original(self, *args, **options)

    redis.Redis.execute_command = counting
    try:
        call()
    finally:
        redis.Redis.execute_command = original
    return seen


def test_a_warm_authenticated_request_costs_one_redis_command(org) -> None:
    client = org.client()
    assert client.get("/api/v1/sync/pull").status_code == 200  # fills the key's and the plan's cache entries
    commands = redis_commands(lambda: client.get("/api/v1/sync/pull"))
    assert commands == ["EVALSHA"]


def test_the_cache_entries_the_script_reads_are_json(org) -> None:
    org.client().get("/api/v1/whoami")
    redis_client = get_redis_connection("platform")
    entry = orjson.loads(redis_client.get(entry_key(org.api_key.prefix)))
    assert entry["key"]["prefix"] == org.api_key.prefix
    assert entry["organisation"]["id"] == org.organisation.pk
    assert "secret" not in orjson.dumps(entry).decode().replace("secret_hash", "")
    plan = orjson.loads(redis_client.get(caches["platform"].make_key(plan_cache_key("free"))))
    assert plan["requests_per_minute"] > 0


def test_a_wrong_secret_with_a_real_prefix_spends_nothing_from_the_organisation(org, plan_limits) -> None:
    plan_limits(requests_per_minute=6, burst=3)
    good = org.client()
    assert good.get("/api/v1/whoami")["RateLimit-Remaining"] == "2"  # the entry is cached now
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer opk_{org.api_key.prefix}_{'x' * 40}")
    for _ in range(5):
        assert forged.get("/api/v1/whoami").status_code == 401
    # The organisation still has both of its remaining tokens.
    assert good.get("/api/v1/whoami")["RateLimit-Remaining"] == "1"
    assert good.get("/api/v1/whoami")["RateLimit-Remaining"] == "0"


def test_a_revoked_key_spends_nothing_and_gets_401(org, plan_limits) -> None:
    from shared_apps.apikeys.services import api_key_revoke
    from shared_apps.audit.services import CLI

    plan_limits(requests_per_minute=6, burst=3)
    client = org.client()
    assert client.get("/api/v1/whoami")["RateLimit-Remaining"] == "2"
    api_key_revoke(actor=CLI, api_key=org.api_key)
    for _ in range(3):
        assert client.get("/api/v1/whoami").status_code == 401
    bucket = get_redis_connection("default").get(f"outpost:rl:org:{org.organisation.pk}")
    assert bucket is not None  # one token spent, by the request before the revocation only
    result = ratelimit.organisation_ratelimit_hit(organisation_id=org.organisation.pk, plan_slug="free")
    assert result is not None
    assert result.states[0].remaining == 1  # 3 - 1 (before) - 1 (this probe)


def test_pulls_and_pushes_are_counted_at_admission(org) -> None:
    client = org.client()
    for _ in range(3):
        assert client.get("/api/v1/sync/pull").status_code == 200
    body = {
        "device_id": "d1",
        "mutations": [{"mutation_id": "m1", "collection": "todos", "id": "a", "op": "put", "data": {}}],
    }
    assert client.post("/api/v1/sync/push", body, format="json").status_code == 200
    assert client.get("/api/v1/whoami").status_code == 200  # counts nothing
    assert usage_today(organisation_id=org.organisation.pk) == {"pushes": 1, "pulls": 3, "mutations": 1}


def test_a_key_without_the_views_scope_is_not_counted(make_organisation) -> None:
    reader = make_organisation(scopes=["sync:read"])
    client = reader.client()
    body = {"device_id": "d1", "mutations": []}
    assert client.post("/api/v1/sync/push", body, format="json").status_code == 403
    assert client.get("/api/v1/sync/pull").status_code == 200
    assert usage_today(organisation_id=reader.organisation.pk) == {"pushes": 0, "pulls": 1, "mutations": 0}


def test_a_request_refused_by_the_rate_limit_is_not_counted(org, plan_limits) -> None:
    plan_limits(requests_per_minute=6, burst=2)
    client = org.client()
    statuses = [client.get("/api/v1/sync/pull").status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert usage_today(organisation_id=org.organisation.pk)["pulls"] == 2


def test_a_cold_plan_entry_is_refilled_and_the_request_still_admitted(org, plan_limits) -> None:
    plan_limits(requests_per_minute=6, burst=3)
    client = org.client()
    assert client.get("/api/v1/sync/pull")["RateLimit-Remaining"] == "2"
    caches["platform"].delete(plan_cache_key("free"))  # expired, or evicted by a plan edit
    response = client.get("/api/v1/sync/pull")
    assert (response.status_code, response["RateLimit-Remaining"]) == (200, "1")
    assert caches["platform"].get(plan_cache_key("free")) is not None
    assert redis_commands(lambda: client.get("/api/v1/sync/pull")) == ["EVALSHA"]  # warm again
    assert usage_today(organisation_id=org.organisation.pk)["pulls"] == 3


def test_a_cache_miss_reads_the_database_and_admits_the_slower_way(org, plan_limits) -> None:
    plan_limits(requests_per_minute=6, burst=3)
    client = org.client()
    caches["platform"].delete(f"apikey:{org.api_key.prefix}")
    response = client.get("/api/v1/sync/pull")
    assert (response.status_code, response["RateLimit-Remaining"]) == (200, "2")
    assert usage_today(organisation_id=org.organisation.pk)["pulls"] == 1
    assert get_redis_connection("platform").get(entry_key(org.api_key.prefix)) is not None


def test_the_admission_script_survives_a_script_cache_flush(org) -> None:
    client = org.client()
    assert client.get("/api/v1/whoami").status_code == 200
    get_redis_connection("platform").script_flush()
    response = client.get("/api/v1/whoami")
    assert response.status_code == 200
    assert "RateLimit-Remaining" in response
