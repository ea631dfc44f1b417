"""Rate limiting: per-organisation request limits (from the plan) and failed-authentication limits (per address).

The limiter itself is :mod:`billing.ratelimit`; ``docs/limits.md`` describes the behaviour these settings change.
"""

from __future__ import annotations

import ipaddress

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

# Off switch for both limits (the test settings turn it off; tests about limiting turn it on).
RATELIMIT_ENABLED: bool = env("RATELIMIT_ENABLED", bool, True)
# Redis unreachable: keep serving unlimited (true) or answer 503 rate_limiter_unavailable (false).
RATELIMIT_FAIL_OPEN: bool = env("RATELIMIT_FAIL_OPEN", bool, True)
# After a Redis error the limiter stops trying Redis for this long, so a blackholed Redis costs one
# socket timeout per process per interval instead of one per request.
RATELIMIT_REDIS_RETRY_SECONDS: float = env("RATELIMIT_REDIS_RETRY_SECONDS", float, 5.0)

# Failed API-key authentications allowed per client address: a sustained rate and a burst.
RATELIMIT_AUTH_FAILURES_PER_MINUTE: int = env("RATELIMIT_AUTH_FAILURES_PER_MINUTE", int, 30)
RATELIMIT_AUTH_FAILURES_BURST: int = env("RATELIMIT_AUTH_FAILURES_BURST", int, 10)
# Peers (addresses or CIDR networks) whose X-Forwarded-For is believed. Empty: only REMOTE_ADDR counts.
RATELIMIT_TRUSTED_PROXIES: list[str] = env("RATELIMIT_TRUSTED_PROXIES", list, [])

# Each API key may use at most this share of its organisation's rate and burst (1.0: no per-key limit).
RATELIMIT_PER_KEY_SHARE: float = env("RATELIMIT_PER_KEY_SHARE", float, 1.0)


def _check() -> None:
    for name in ("RATELIMIT_AUTH_FAILURES_PER_MINUTE", "RATELIMIT_AUTH_FAILURES_BURST"):
        if globals()[name] < 1:
            raise ImproperlyConfigured(f"The {name} environment variable must be at least 1.")
    if not 0 < RATELIMIT_PER_KEY_SHARE <= 1:
        raise ImproperlyConfigured("The RATELIMIT_PER_KEY_SHARE environment variable must be in (0, 1].")
    if RATELIMIT_REDIS_RETRY_SECONDS < 0:
        raise ImproperlyConfigured("The RATELIMIT_REDIS_RETRY_SECONDS environment variable must not be negative.")
    for proxy in RATELIMIT_TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise ImproperlyConfigured(f"The RATELIMIT_TRUSTED_PROXIES environment variable is invalid: {exc}") from exc


_check()
