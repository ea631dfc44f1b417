"""Helpers for the ``platform`` cache that keep the API serving when Redis is down.

A cache outage must not take the API down: reads fall back to the database and
writes/invalidations are logged. Invalidation runs after commit so a rolled
back change never evicts (and a concurrent reader never re-caches) stale data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.core.cache import caches
from django.db import transaction

logger = logging.getLogger("outpost.cache")
_MISSING = object()


def platform_cache():
    return caches["platform"]


def cache_get_many(keys: Iterable[str]) -> dict[str, Any]:
    try:
        return platform_cache().get_many(list(keys))
    except Exception as exc:
        logger.warning("platform cache read failed: %s", exc)
        return {}


def cache_set(key: str, value: Any, timeout: int) -> None:
    try:
        platform_cache().set(key, value, timeout)
    except Exception as exc:
        logger.warning("platform cache write failed: %s", exc)


def cache_add(key: str, value: Any, timeout: int) -> bool:
    """Set only if absent; ``False`` on a Redis failure, so callers skip optional work."""
    try:
        return bool(platform_cache().add(key, value, timeout))
    except Exception as exc:
        logger.warning("platform cache add failed: %s", exc)
        return False


def cache_delete_on_commit(*keys: str) -> None:
    """Evict keys now and again once the surrounding transaction commits.

    The second eviction matters: a request that reads the database between the
    first eviction and the commit re-caches the old value.
    """

    def _delete() -> None:
        try:
            platform_cache().delete_many(list(keys))
        except Exception as exc:
            logger.error("platform cache invalidation failed for %s: %s", keys, exc)

    _delete()
    transaction.on_commit(_delete)
