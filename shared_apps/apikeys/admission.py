"""Admission: an API request's key lookup, rate limit and usage count in one Redis round trip.

Every API request needs three things from Redis: its key's cache entry (the key
and its organisation), a token from its organisation's rate-limit bucket, and
one more on the organisation's usage counter for the day. Each round trip costs
far more than Redis's own work, so one Lua script does all three:

1. ``GET`` the key's platform-cache entry (JSON, see
   :mod:`shared_apps.apikeys.selectors`). Missing: reply ``MISS`` and the
   caller reads the database and fills the cache.
2. Only when the presented secret's SHA-256 equals the entry's, the key is
   neither revoked nor expired and its organisation is active, spend: read the
   plan's cached limits (missing: ``NO_PLAN``), then run the same GCRA function
   as :mod:`billing.ratelimit` over the organisation's bucket (and the key's,
   when ``RATELIMIT_PER_KEY_SHARE`` < 1) while looking at the client address's
   failed-authentication bucket; when admitted, add one to the day's usage
   counter the view names (``pulls``, ``pushes``).
   Anything else: ``NOT_SPENT``, nothing written. Someone who knows only a
   key's public prefix therefore cannot drain its organisation's budget.

The script only decides what to spend. Authentication itself stays in Python
(:mod:`shared_apps.apikeys.authentication`): the entry is decoded there, the
digest compared in constant time and the key and organisation checked again;
whenever Python and the script disagree (clock skew on an expiry, a cold plan
entry, a cache miss, Redis unreachable) Python admits the request the slower
way, with :func:`billing.ratelimit.admit` and :func:`billing.usage.usage_incr`.

The script builds the bucket and usage keys from the organisation id it reads,
so it needs a single Redis server (or a cluster with hash tags), which is what
Outpost runs on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest
from django_redis import get_redis_connection
from redis.exceptions import NoScriptError, RedisError

from billing import ratelimit, usage
from billing.selectors import plan_cache_key
from shared_apps.apikeys.selectors import api_key_cache_key
from shared_apps.core.cache import platform_cache

MISS = 0  # no cache entry: read the database
NOT_SPENT = 1  # an entry, but nothing spent (wrong secret, revoked, expired, inactive, or unreadable)
NO_PLAN = 2  # a valid key whose plan's limits are not cached
ADMITTED = 3  # spent (or, with the limiter off, only counted)

_ADMISSION_LUA = (
    ratelimit.GCRA_LUA_FUNCTION
    + b"""
-- KEYS[1]: the key's platform-cache entry; KEYS[2]: the client address's failed-authentication bucket.
-- ARGV: [1] SHA-256 (hex) of the presented secret, [2] platform-cache key prefix of plan entries,
-- [3] "1" when the limiter is on, [4] per-key share, [5] [6] the address bucket's interval and tolerance (us),
-- [7] usage counter to add one to ("" for none), [8] usage key prefix, [9] usage key suffix, [10] its TTL (s),
-- [11] the scope the view requires ("" for none): the counter only counts requests the key may make.
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local ok, entry = pcall(cjson.decode, raw)
if not ok or type(entry) ~= 'table' or type(entry.key) ~= 'table' or type(entry.organisation) ~= 'table' then
  return {1, raw}
end
local key, org = entry.key, entry.organisation
local now = redis_now()
if key.secret_hash ~= ARGV[1] or key.revoked ~= false or org.status ~= 'active'
   or (type(key.expires_at) == 'number' and key.expires_at * 1000000 <= now) then
  return {1, raw}
end
local reply = {3, raw, 0}
local allowed = 1
if ARGV[3] == '1' then
  local plan_raw = redis.call('GET', ARGV[2] .. org.plan_slug)
  if not plan_raw then return {2, raw} end
  local plan = cjson.decode(plan_raw)
  local per_minute, burst = tonumber(plan.requests_per_minute), tonumber(plan.burst)
  local keys, params = {}, {}
  local function bucket(name, rate, size, spend)
    local interval = math.max(1, math.floor(60000000 / rate + 0.5))
    keys[#keys + 1] = name
    params[#params + 1] = interval
    params[#params + 1] = interval * size
    params[#params + 1] = spend
    if spend == 1 then
      reply[3] = reply[3] + 1
      reply[#reply + 1] = interval
      reply[#reply + 1] = size
    end
  end
  bucket('outpost:rl:org:' .. string.format('%d', org.id), per_minute, burst, 1)
  local share = tonumber(ARGV[4])
  if share < 1 then
    local key_burst = math.max(1, math.floor(burst * share))
    bucket('outpost:rl:key:' .. string.format('%d', key.id), per_minute * share, key_burst, 1)
  end
  keys[#keys + 1] = KEYS[2]
  params[#params + 1] = ARGV[5]
  params[#params + 1] = ARGV[6]
  params[#params + 1] = 0
  local result = gcra(keys, params, now)
  allowed = result[1]
  for i = 1, #result do reply[#reply + 1] = result[i] end
end
local function holds(scope)
  if scope == '' then return true end
  for _, held in ipairs(key.scopes) do
    if held == scope or held == 'admin' then return true end
  end
  return false
end
if allowed == 1 and ARGV[7] ~= '' and holds(ARGV[11]) then
  local counter = ARGV[8] .. string.format('%d', org.id) .. ARGV[9]
  redis.call('HINCRBY', counter, ARGV[7], 1)
  redis.call('EXPIRE', counter, ARGV[10])
end
return reply
"""
)
_ADMISSION_SHA = hashlib.sha1(_ADMISSION_LUA, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Admission:
    """What the script did: ``code`` (one of the constants above), the raw cache entry, and the limiter's
    result when it spent (``None`` with the limiter off)."""

    code: int
    entry: bytes | None = None
    rate: ratelimit.RateLimitResult | None = None


def admission_call(
    *, prefix: str, digest: str, request: HttpRequest, counter: str | None, scope: str | None
) -> Admission | None:
    """Run the admission script for the key ``prefix`` presented with a secret hashing to ``digest``.

    ``counter`` is the usage counter to add one to when the request is admitted and the key holds
    ``scope`` (the view's required scope).

    ``None`` when Redis cannot be reached (the caller falls back to the database and the limiter's
    fail-open/closed rule).
    """
    if not ratelimit.redis_reachable():
        return None
    cache = platform_cache()
    address_bucket = ratelimit.auth_failure_bucket(ratelimit.client_address(request.META))
    request.outpost_address_bucket = address_bucket  # type: ignore[attr-defined] - for enforce()
    day = datetime.now(UTC).date()
    command = (
        "EVALSHA",
        _ADMISSION_SHA,
        2,
        cache.make_key(api_key_cache_key(prefix)),
        address_bucket.key,
        digest,
        cache.make_key(plan_cache_key("")),
        "1" if settings.RATELIMIT_ENABLED else "0",
        settings.RATELIMIT_PER_KEY_SHARE,
        address_bucket.interval_us,
        address_bucket.interval_us * address_bucket.burst,
        counter or "",
        usage.USAGE_KEY_PREFIX,
        f":{day:%Y%m%d}",
        usage.KEY_TTL_SECONDS,
        scope or "",
    )
    try:
        client = get_redis_connection("platform")
        try:
            reply = client.execute_command(*command)
        except NoScriptError:  # a new or flushed server: load the script once, then it is cached there
            client.script_load(_ADMISSION_LUA)
            reply = client.execute_command(*command)
    except (RedisError, OSError) as exc:
        ratelimit.redis_mark_unreachable(exc)  # the fallback path counts the outage and fails open or closed
        return None
    code = int(reply[0])
    if code != ADMITTED:
        return Admission(code, reply[1] if len(reply) > 1 else None)
    if len(reply) == 3:  # limiter off
        return Admission(code, reply[1])
    spent = int(reply[2])
    metas = [(_POLICIES[i], int(reply[4 + 2 * i]), int(reply[3 + 2 * i])) for i in range(spent)]
    result = ratelimit.result_from_reply(reply[3 + 2 * spent :], metas, look=_LOOK)
    request.outpost_ratelimit_admitted = True  # type: ignore[attr-defined]
    return Admission(code, reply[1], result)


_POLICIES = (ratelimit.POLICY_ORGANISATION, ratelimit.POLICY_KEY)
_LOOK = (ratelimit.POLICY_AUTH_FAILURES,)


def enforce(request: HttpRequest, admission: Admission) -> None:
    """429 when the admission refused the request; otherwise leave the limiter's state for the headers."""
    if admission.rate is not None:
        ratelimit.enforce(request, admission.rate, request.outpost_address_bucket)  # type: ignore[attr-defined]
