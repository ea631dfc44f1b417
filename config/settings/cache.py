"""Redis: Django cache (django-redis) and the shared Redis URL.

Two cache aliases on one Redis:

* ``default`` prefixes every key with the current tenant schema
  (``django_tenants.cache.make_key``), so a value cached while serving one
  organisation can never be read while serving another.
* ``platform`` has plain keys, for public-schema facts that must be found from
  any schema: API key and organisation lookups, rate-limit buckets.
"""

from __future__ import annotations

from config.settings.env import env

REDIS_URL: str = env("REDIS_URL", str, "")


def caches_for(redis_url: str) -> dict:
    options = {
        "CLIENT_CLASS": "django_redis.client.DefaultClient",
        "SOCKET_CONNECT_TIMEOUT": 1,
        "SOCKET_TIMEOUT": 1,
    }
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
            "KEY_PREFIX": "outpost",
            "OPTIONS": options,
        },
        "platform": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "outpost:platform",
            # Version 2: values are JSON (version 1 held pickles), so the admission script
            # (shared_apps.apikeys.admission) can read key and plan entries inside Redis.
            "VERSION": 2,
            "OPTIONS": {**options, "SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
        },
    }


CACHES = caches_for(REDIS_URL) if REDIS_URL else {}
