"""Fixed-window counters in Redis for the portal's abuse protection (sign-up, log-in, password reset).

One atomic script per hit: ``INCR`` the window's counter and, when the
counter is new, ``EXPIRE`` it, so a counter can never be left without an
expiry. Keys are plain (``outpost:portal:rl:…``), written through the raw
django-redis client, never through the tenant-prefixed cache. When Redis is
unreachable the portal keeps working (the hit is allowed and logged): these
limits slow abuse down, they are not what keeps data safe.
"""

from __future__ import annotations

import hashlib
import logging

from django_redis import get_redis_connection

logger = logging.getLogger("outpost.portal")

KEY_PREFIX = "outpost:portal:rl"
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
return count
"""


def email_digest(email: str) -> str:
    """Counters are keyed by a digest, so Redis never holds the addresses themselves."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def counter_hit(name: str, *, limit: int, window_seconds: int) -> bool:
    """Count one attempt against ``name``; ``True`` while the window's count is within ``limit``."""
    try:
        count = get_redis_connection("default").eval(_HIT, 1, f"{KEY_PREFIX}:{name}", window_seconds)
    except Exception as exc:  # the client library's connection errors have many names
        logger.warning("portal rate limit unavailable (%s): allowing %s", exc, name.split(":", 1)[0])
        return True
    return int(count) <= limit


def hits_allowed(counters: list[tuple[str, int]], *, window_seconds: int) -> bool:
    """Count one attempt against every ``(name, limit)`` counter (all of them, so none can be dodged).

    ``True`` when every counter is still within its limit.
    """
    results = [counter_hit(name, limit=limit, window_seconds=window_seconds) for name, limit in counters]
    return all(results)
