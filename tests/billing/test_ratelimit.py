"""Per-organisation rate limits: a GCRA bucket per organisation in Redis, spent atomically by one Lua script.

Limits come from the plan (``plan_limits`` makes them small here). Time is Redis ``TIME``, so refill tests
wait for real, with high rates and short sleeps.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django_redis import get_redis_connection
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from billing import ratelimit
from billing.ratelimit import Bucket, ratelimit_hit
from config.settings.cache import caches_for

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def limiter_on(settings) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_FAIL_OPEN = True
    ratelimit._unavailable_until.clear()


def whoami(client: APIClient):
    return client.get("/api/v1/whoami")


def assert_headers_consistent(response, *, limit: int, window: int) -> None:
    remaining, reset = int(response["RateLimit-Remaining"]), int(response["RateLimit-Reset"])
    assert response["RateLimit-Limit"] == str(limit)
    assert 0 <= remaining <= limit
    assert 0 <= reset <= window
    assert response["RateLimit-Policy"] == f'"default";q={limit};w={window}'
    assert response["RateLimit"] == f'"default";r={remaining};t={reset}'


def unavailable_count(check: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("outpost_ratelimit_unavailable_total", {"check": check, "outcome": outcome})
    return value or 0.0


def test_burst_is_allowed_then_429_with_the_error_shape_and_headers(org, plan_limits) -> None:
    plan_limits(requests_per_minute=6, burst=3)  # one token per 10 s: nothing refills during the test
    client = org.client()
    for expected_remaining in (2, 1, 0):
        response = whoami(client)
        assert response.status_code == 200
        assert response["RateLimit-Remaining"] == str(expected_remaining)
        assert_headers_consistent(response, limit=3, window=30)
    assert response["RateLimit-Reset"] == "30"  # three tokens spent, 10 s each, until the bucket is full again

    response = whoami(client)
    assert response.status_code == 429
    assert_headers_consistent(response, limit=3, window=30)
    assert response["RateLimit-Remaining"] == "0"
    assert response["Retry-After"] == "10"  # the next token, not the full bucket
    assert response.json() == {
        "error": {
            "code": "rate_limited",
            "message": "Too many requests.",
            "details": {"limit": 3, "remaining": 0, "reset": 30, "policy": "default", "retry_after": 10},
        }
    }


def test_a_refused_request_spends_nothing(org, plan_limits) -> None:
    plan_limits(requests_per_minute=120, burst=1)  # a token every 0.5 s
    client = org.client()
    assert whoami(client).status_code == 200
    for _ in range(5):
        assert whoami(client).status_code == 429
    time.sleep(0.55)
    assert whoami(client).status_code == 200  # the refusals did not push the next token further away


def test_the_bucket_refills_at_the_plan_rate(org, plan_limits) -> None:
    plan_limits(requests_per_minute=120, burst=2)  # 2 tokens a second
    client = org.client()
    assert [whoami(client).status_code for _ in range(3)] == [200, 200, 429]
    refused = whoami(client)
    assert refused["Retry-After"] == "1"
    time.sleep(0.55)
    response = whoami(client)
    assert response.status_code == 200
    assert response["RateLimit-Remaining"] == "0"
    assert whoami(client).status_code == 429
    time.sleep(1.05)  # two tokens: the bucket is full again
    assert [whoami(client).status_code for _ in range(3)] == [200, 200, 429]


def test_one_organisation_exhausted_leaves_another_unaffected(org, other_org, plan_limits) -> None:
    plan_limits(requests_per_minute=1, burst=2)  # both are on the free plan
    client, other = org.client(), other_org.client()
    assert [whoami(client).status_code for _ in range(4)] == [200, 200, 429, 429]
    response = whoami(other)
    assert response.status_code == 200
    assert response["RateLimit-Remaining"] == "1"
    assert whoami(client).status_code == 429


def test_keys_are_plain_and_expire_when_the_bucket_is_full(org, plan_limits) -> None:
    plan_limits(requests_per_minute=60, burst=5)
    assert whoami(org.client()).status_code == 200
    redis = get_redis_connection("default")
    key = f"outpost:rl:org:{org.organisation.pk}"
    assert redis.exists(key) == 1  # no tenant-schema or cache prefix
    assert 0 < redis.pttl(key) <= 1_000 + 1  # one token spent: full again in one emission interval


def test_a_plan_change_applies_to_the_next_request(org, plan_limits) -> None:
    plan_limits(requests_per_minute=1, burst=1)
    client = org.client()
    assert [whoami(client).status_code for _ in range(2)] == [200, 429]
    plan_limits(requests_per_minute=6_000, burst=100)
    response = whoami(client)
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "100"


def test_errors_after_the_throttle_carry_the_headers_too(org) -> None:
    response = org.client().get("/api/v1/collections/no-such-collection")
    assert response.status_code == 404
    assert response["RateLimit-Limit"] == "120"  # the free plan's burst
    assert "RateLimit" in response


def test_unauthenticated_and_disabled_responses_have_no_headers(org, settings) -> None:
    response = APIClient().get("/api/v1/whoami")
    assert response.status_code == 401
    assert "RateLimit-Limit" not in response
    settings.RATELIMIT_ENABLED = False
    response = whoami(org.client())
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response


def test_per_key_share_limits_each_key_within_the_organisation(org, plan_limits, settings) -> None:
    from shared_apps.apikeys.services import api_key_create
    from shared_apps.audit.services import CLI

    settings.RATELIMIT_PER_KEY_SHARE = 0.5
    plan_limits(requests_per_minute=1, burst=4)  # each key: burst 2
    _, second_key = api_key_create(actor=CLI, organisation=org.organisation, name="second", scopes=["sync:read"])
    first, second = org.client(), APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {second_key}")

    response = whoami(first)
    assert response["RateLimit-Policy"] == '"default";q=4;w=240, "per-key";q=2;w=240'
    assert response["RateLimit"] == '"default";r=3;t=60, "per-key";r=1;t=120'
    assert (response["RateLimit-Limit"], response["RateLimit-Remaining"]) == ("2", "1")  # the tighter one
    assert whoami(first).status_code == 200
    refused = whoami(first)
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["policy"] == "per-key"
    assert [whoami(second).status_code for _ in range(2)] == [200, 200]  # the refusal above spent nothing
    refused = whoami(second)
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["policy"] == "default"  # organisation and key are both empty now


# -- atomicity ----------------------------------------------------------------------------------------------


def hammer(bucket: Bucket, *, threads: int, attempts: int) -> list[bool]:
    outcomes: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        mine = []
        for _ in range(attempts):
            result = ratelimit_hit(buckets=(bucket,), check="organisation")
            assert result is not None
            mine.append(result.allowed)
        with lock:
            outcomes.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def test_concurrent_callers_never_spend_more_than_the_burst() -> None:
    bucket = Bucket("outpost:rl:test:hammer", "default", per_minute=1, burst=25)
    outcomes = hammer(bucket, threads=8, attempts=40)
    assert len(outcomes) == 320
    assert outcomes.count(True) == 25


def test_the_script_survives_a_script_cache_flush() -> None:
    bucket = Bucket("outpost:rl:test:flush", "default", per_minute=1, burst=3)
    assert ratelimit_hit(buckets=(bucket,), check="organisation").allowed
    get_redis_connection("default").script_flush()
    result = ratelimit_hit(buckets=(bucket,), check="organisation")
    assert result.allowed
    assert result.states[0].remaining == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_concurrent_http_clients_of_one_organisation_share_one_bucket(committed_organisation, plan_limits) -> None:
    plan_limits(requests_per_minute=1, burst=10)
    keyed = committed_organisation()
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def client_loop() -> None:
        client = keyed.client()
        try:
            start.wait()
            mine = [whoami(client).status_code for _ in range(8)]
            with lock:
                statuses.extend(mine)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=client_loop) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(set(statuses)) == [200, 429]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 38


# -- Redis unreachable ------------------------------------------------------------------------------------------


def test_redis_down_fails_open_logged_and_counted(org, settings, caplog) -> None:
    client = org.client()
    assert whoami(client).status_code == 200  # cache the key while Redis is up (not required, but realistic)
    before = unavailable_count("organisation", "fail_open")
    settings.CACHES = caches_for(DEAD_REDIS)
    with caplog.at_level("WARNING", logger="outpost.ratelimit"):
        first, second = whoami(client), whoami(client)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "RateLimit-Limit" not in first  # nothing is counted, so nothing is promised
    assert unavailable_count("organisation", "fail_open") == before + 2
    warnings = [r for r in caplog.records if r.name == "outpost.ratelimit"]
    assert len(warnings) == 1  # logged once per retry interval, not once per request
    assert "failing open" in warnings[0].getMessage()


def test_redis_down_fails_closed_with_503_when_configured(org, settings) -> None:
    settings.RATELIMIT_FAIL_OPEN = False
    settings.CACHES = caches_for(DEAD_REDIS)
    before = unavailable_count("organisation", "fail_closed")
    response = whoami(org.client())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "rate_limiter_unavailable"
    assert int(response["Retry-After"]) >= 1
    assert unavailable_count("organisation", "fail_closed") == before + 1


def test_the_limiter_retries_redis_after_the_retry_interval(org, settings) -> None:
    settings.RATELIMIT_REDIS_RETRY_SECONDS = 0.2
    ratelimit._unavailable_until[settings.CACHES["default"]["LOCATION"]] = time.monotonic() + 0.2
    client = org.client()
    assert "RateLimit-Limit" not in whoami(client)  # still inside the retry interval: fail open without trying
    time.sleep(0.25)
    assert whoami(client)["RateLimit-Limit"] == "120"
