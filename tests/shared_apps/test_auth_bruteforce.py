"""Failed API-key authentications are limited per client address, so keys cannot be guessed.

Only 401s from API key authentication spend the address's budget. Once it is empty every attempt from that
address gets 429 before the key is even looked at, so a right guess looks exactly like a wrong one.
"""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from billing import ratelimit
from billing.ratelimit import client_address

pytestmark = pytest.mark.django_db

ATTACKER = "198.51.100.7"
BYSTANDER = "203.0.113.9"


@pytest.fixture(autouse=True)
def limiter_on(settings) -> None:
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMIT_AUTH_FAILURES_PER_MINUTE = 1  # nothing refills during a test unless it says so
    settings.RATELIMIT_AUTH_FAILURES_BURST = 5
    settings.RATELIMIT_TRUSTED_PROXIES = []
    ratelimit._unavailable_until.clear()


def call(key: str | None, address: str, **extra: str):
    client = APIClient()
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get("/api/v1/whoami", REMOTE_ADDR=address, **extra)


def wrong(org) -> str:
    prefix, secret = org.key.split("_")[1], org.key.split("_")[2]
    return f"opk_{prefix}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


def test_after_the_burst_of_failures_the_address_gets_429_even_with_a_valid_key(org) -> None:
    assert [call(wrong(org), ATTACKER).status_code for _ in range(5)] == [401] * 5
    refused = call(wrong(org), ATTACKER)
    assert refused.status_code == 429
    assert refused.json()["error"] == {
        "code": "rate_limited",
        "message": "Too many failed authentication attempts from this address.",
        "details": {"limit": 5, "remaining": 0, "reset": 300, "policy": "auth-failures", "retry_after": 60},
    }
    assert refused["Retry-After"] == "60"
    right_key = call(org.key, ATTACKER)
    assert right_key.status_code == 429  # indistinguishable from a wrong guess
    assert right_key.json() == refused.json()


def test_another_address_is_unaffected(org) -> None:
    for _ in range(6):
        call(wrong(org), ATTACKER)
    assert call(wrong(org), ATTACKER).status_code == 429
    assert call(org.key, BYSTANDER).status_code == 200
    assert call(wrong(org), BYSTANDER).status_code == 401


def test_every_kind_of_bad_key_counts_once(org) -> None:
    headers = ["Bearer not-a-key", f"Basic {org.key}", "Bearer ", f"Bearer {org.key[:-1]}", f"Bearer {wrong(org)}"]
    for header in headers:
        response = APIClient().get("/api/v1/whoami", REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
    assert call(org.key, ATTACKER).status_code == 429  # exactly five failures spent exactly five tokens


def test_successes_and_missing_keys_spend_nothing(org) -> None:
    for _ in range(20):
        assert call(org.key, ATTACKER).status_code == 200
        assert call(None, ATTACKER).json()["error"]["code"] == "authentication_required"
    assert [call(wrong(org), ATTACKER).status_code for _ in range(6)] == [401] * 5 + [429]


def test_the_budget_refills(org, settings) -> None:
    settings.RATELIMIT_AUTH_FAILURES_PER_MINUTE = 120  # a failure every 0.5 s
    settings.RATELIMIT_AUTH_FAILURES_BURST = 2
    assert [call(wrong(org), ATTACKER).status_code for _ in range(3)] == [401, 401, 429]
    assert call(org.key, ATTACKER).status_code == 429
    time.sleep(0.55)
    assert call(org.key, ATTACKER).status_code == 200  # one attempt's worth came back; a success spends none
    assert call(wrong(org), ATTACKER).status_code == 401
    assert call(org.key, ATTACKER).status_code == 429


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(org, settings) -> None:
    for number in range(5):
        call(wrong(org), ATTACKER, HTTP_X_FORWARDED_FOR=f"192.0.2.{number}")  # a spoofed header changes nothing
    assert call(org.key, ATTACKER, HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429

    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.0/8"]
    for _ in range(5):
        call(wrong(org), "10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.1, {BYSTANDER}")
    assert call(org.key, "10.0.0.3", HTTP_X_FORWARDED_FOR=BYSTANDER).status_code == 429
    assert call(org.key, "10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.50").status_code == 200  # the proxy is not blocked


def test_client_address_rules(settings) -> None:
    assert client_address({"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}) == "198.51.100.7"
    settings.RATELIMIT_TRUSTED_PROXIES = ["10.0.0.0/8", "172.16.0.1"]
    through = {"REMOTE_ADDR": "10.1.1.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.7, 172.16.0.1"}
    assert client_address(through) == "198.51.100.7"  # the rightmost address no trusted proxy owns
    assert client_address({"REMOTE_ADDR": "10.1.1.1", "HTTP_X_FORWARDED_FOR": "garbage"}) == "10.1.1.1"
    assert client_address({"REMOTE_ADDR": "10.1.1.1"}) == "10.1.1.1"
    assert client_address({"REMOTE_ADDR": "2001:db8:1:2:3:4:5:6"}) == "2001:db8:1:2::/64"
    assert client_address({"REMOTE_ADDR": "2001:db8:1:2:ffff::1"}) == "2001:db8:1:2::/64"


def test_off_switch_disables_the_failure_limit(org, settings) -> None:
    settings.RATELIMIT_ENABLED = False
    assert {call(wrong(org), ATTACKER).status_code for _ in range(8)} == {401}
    assert call(org.key, ATTACKER).status_code == 200
