"""Rate limits in Redis: per organisation (from its plan) and per client address for failed authentication.

Every limit is a GCRA bucket (the "generic cell rate algorithm", a token bucket that stores one number: the
theoretical arrival time, TAT). One Lua script checks and spends one or more buckets in a single atomic
``EVALSHA``, with the clock taken from Redis ``TIME``, so two workers can never both spend the last token and
application servers' clocks do not matter. Keys are plain (``outpost:rl:…``), written through the raw
django-redis client, never through the tenant-prefixed cache.

* :func:`admit`, called by the API key authentication right after a key is verified, spends one token of
  ``outpost:rl:org:<id>`` (plus one of ``outpost:rl:key:<id>`` when ``RATELIMIT_PER_KEY_SHARE`` < 1) and,
  in the same call, checks the client address's failed-authentication bucket; over either limit it raises
  :class:`~shared_apps.core.errors.RateLimited`. One Redis round trip per request.
* :func:`auth_failure_record` spends from that per-address bucket on every failed authentication; while it
  is empty every attempt from that address, valid key or not, gets 429.
* :class:`OrganisationRateThrottle` (a DRF throttle) admits requests that did not come through the API key
  authentication (none today) the same way.
* :class:`RateLimitHeadersMiddleware` copies the state the throttle left on the request into ``RateLimit-*``
  response headers.

When Redis cannot be reached the limiter fails open (logged, counted in
``outpost_ratelimit_unavailable_total``) unless ``RATELIMIT_FAIL_OPEN`` is false, which answers 503.
See ``docs/limits.md``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_redis import get_redis_connection
from prometheus_client import Counter
from redis.commands.core import Script
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from billing.selectors import plan_limits
from shared_apps.core.errors import OutpostError, RateLimited

logger = logging.getLogger("outpost.ratelimit")

KEY_PREFIX = "outpost:rl"
POLICY_ORGANISATION = "default"
POLICY_KEY = "per-key"
POLICY_AUTH_FAILURES = "auth-failures"

UNAVAILABLE = Counter(
    "outpost_ratelimit_unavailable_total",
    "Rate-limit checks decided without Redis (unreachable), by check and outcome.",
    ["check", "outcome"],
)
REJECTED = Counter("outpost_ratelimit_rejected_total", "Requests answered 429 by a rate limit, by policy.", ["policy"])

# The algorithm, as a Lua function other scripts embed (see shared_apps.apikeys.admission). ``keys`` are the
# buckets; for bucket i, params[3i-2] and params[3i-1] are its emission interval (time per token) and tolerance
# (burst x interval) in µs, and params[3i] is "1" to spend a token from it or "0" to only look. Every bucket must
# have a token for the request to be allowed; then the spending buckets each lose one (all or none). Returns
# {allowed, retry_us, remaining_1, full_in_us_1, remaining_2, full_in_us_2, ...}.
GCRA_LUA_FUNCTION = b"""
local function gcra(keys, params, now)
  local allowed = 1
  local retry = 0
  local tats = {}
  for i = 1, #keys do
    local interval = tonumber(params[3 * i - 2])
    local tolerance = tonumber(params[3 * i - 1])
    local tat = tonumber(redis.call('GET', keys[i])) or now
    if tat < now then tat = now end
    tats[i] = tat
    local wait = tat + interval - tolerance - now
    if wait > 0 then
      allowed = 0
      if wait > retry then retry = wait end
    end
  end
  local result = {allowed, retry}
  for i = 1, #keys do
    local interval = tonumber(params[3 * i - 2])
    local tolerance = tonumber(params[3 * i - 1])
    local tat = tats[i]
    if allowed == 1 and tostring(params[3 * i]) == '1' then
      tat = tat + interval
      -- %.0f: a plain integer string; tostring() would round a 16-digit number to 14 significant digits.
      redis.call('SET', keys[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
    end
    result[#result + 1] = math.floor((tolerance - (tat - now)) / interval)
    result[#result + 1] = tat - now
  end
  return result
end
local function redis_now()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end
"""
# KEYS: the buckets; ARGV: three values per bucket, as ``params`` above.
_GCRA_LUA = GCRA_LUA_FUNCTION + b"return gcra(KEYS, ARGV, redis_now())\n"
# Bytes, so no client is needed to hash it; EVALSHA with a SCRIPT LOAD fallback on whichever client runs it.
_GCRA = Script(None, _GCRA_LUA)  # type: ignore[arg-type]


class RateLimiterUnavailable(OutpostError):
    """Redis is unreachable and ``RATELIMIT_FAIL_OPEN`` is false."""

    status_code = 503
    code = "rate_limiter_unavailable"
    message = "Rate limiting is temporarily unavailable; retry shortly."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(settings.RATELIMIT_REDIS_RETRY_SECONDS)))}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit: ``burst`` tokens at most, refilled at ``per_minute`` tokens a minute."""

    key: str
    policy: str
    per_minute: float
    burst: int

    @property
    def interval_us(self) -> int:
        return max(1, round(60_000_000 / self.per_minute))

    @property
    def window(self) -> int:
        """Seconds an empty bucket takes to fill: the policy is ``burst`` requests per this window."""
        return max(1, math.ceil(self.burst * self.interval_us / 1_000_000))


@dataclass(frozen=True, slots=True)
class BucketState:
    policy: str
    limit: int
    window: int
    remaining: int
    reset: int  # whole seconds until the bucket is full again (0: full)


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    retry_after: int  # whole seconds until the request would be allowed; 0 when allowed
    states: tuple[BucketState, ...]
    blocked_by: str = ""  # the policy of a look-only bucket that refused the request

    @property
    def binding(self) -> BucketState:
        """The state that limits the client first (fewest tokens left; the organisation's on a tie)."""
        return min(self.states, key=lambda state: state.remaining)

    def headers(self) -> dict[str, str]:
        binding = self.binding
        return {
            "RateLimit-Limit": str(binding.limit),
            "RateLimit-Remaining": str(binding.remaining),
            "RateLimit-Reset": str(binding.reset),
            "RateLimit-Policy": ", ".join(f'"{s.policy}";q={s.limit};w={s.window}' for s in self.states),
            "RateLimit": ", ".join(f'"{s.policy}";r={s.remaining};t={s.reset}' for s in self.states),
        }

    def error(self, message: str | None = None) -> RateLimited:
        binding = self.binding
        return RateLimited(
            message,
            retry_after=self.retry_after,
            details={
                "limit": binding.limit,
                "remaining": binding.remaining,
                "reset": binding.reset,
                "policy": binding.policy,
                "retry_after": self.retry_after,
            },
        )


# -- the atomic operation -------------------------------------------------------------------------------------

# Redis location -> monotonic time before which the limiter does not try it again.
_unavailable_until: dict[str, float] = {}


def _redis_location() -> str:
    return str(settings.CACHES.get("default", {}).get("LOCATION", ""))


def ratelimit_hit(
    *, buckets: tuple[Bucket, ...], check: str, spend: bool = True, look: tuple[Bucket, ...] = ()
) -> RateLimitResult | None:
    """Check (and with ``spend``, take one token from) every bucket in one atomic Redis call.

    Tokens are taken from all buckets or from none. ``look`` buckets must also have a token left but are
    never spent from, and stay out of the result's states (and so out of the headers); when one of them
    blocks, ``blocked_by`` names its policy. ``None`` means Redis could not be reached and the limiter
    fails open; with ``RATELIMIT_FAIL_OPEN`` false that raises :class:`RateLimiterUnavailable` instead.
    """
    if not redis_reachable():
        return _unavailable(check)
    args: list[int] = []
    for bucket in buckets:
        args += [bucket.interval_us, bucket.interval_us * bucket.burst, 1 if spend else 0]
    for bucket in look:
        args += [bucket.interval_us, bucket.interval_us * bucket.burst, 0]
    keys = [bucket.key for bucket in buckets] + [bucket.key for bucket in look]
    try:
        reply = _GCRA(keys=keys, args=args, client=get_redis_connection("default"))
    except (RedisError, OSError) as exc:  # unreachable, timed out, refused, or answering errors
        return redis_failed(exc, check)
    _unavailable_until.pop(_redis_location(), None)
    metas = [(bucket.policy, bucket.burst, bucket.interval_us) for bucket in buckets]
    return result_from_reply(reply, metas, look=[bucket.policy for bucket in look])


def redis_reachable() -> bool:
    """False while the limiter is waiting out a Redis outage (``RATELIMIT_REDIS_RETRY_SECONDS``)."""
    return _unavailable_until.get(_redis_location(), 0.0) <= time.monotonic()


def redis_failed(exc: BaseException, check: str) -> None:
    """Record a failed Redis call: fail open (``None``) or closed (raise), and skip Redis for a while."""
    redis_mark_unreachable(exc)
    return _unavailable(check)


def redis_mark_unreachable(exc: BaseException) -> None:
    """Log a failed Redis call and leave Redis alone for ``RATELIMIT_REDIS_RETRY_SECONDS``."""
    _unavailable_until[_redis_location()] = time.monotonic() + settings.RATELIMIT_REDIS_RETRY_SECONDS
    logger.warning(
        "rate limiter: Redis unreachable (%s); %s for %ss",
        exc,
        "failing open" if settings.RATELIMIT_FAIL_OPEN else "failing closed",
        settings.RATELIMIT_REDIS_RETRY_SECONDS,
    )


def result_from_reply(
    reply: list[Any], metas: list[tuple[str, int, int]], *, look: list[str] | tuple[str, ...] = ()
) -> RateLimitResult:
    """Read the ``gcra`` Lua function's reply: ``metas`` is (policy, burst, interval µs) per spent bucket,
    ``look`` the policies of the look-only buckets that follow them."""
    allowed, retry_us = int(reply[0]), int(reply[1])
    states = tuple(
        BucketState(
            policy=policy,
            limit=burst,
            window=max(1, math.ceil(burst * interval_us / 1_000_000)),
            remaining=max(0, int(reply[2 + 2 * i])),
            reset=math.ceil(int(reply[3 + 2 * i]) / 1_000_000),
        )
        for i, (policy, burst, interval_us) in enumerate(metas)
    )
    retry_after = 0 if allowed else max(1, math.ceil(retry_us / 1_000_000))
    blocked_by = ""
    for i, policy in enumerate(look, start=len(metas)):
        if int(reply[2 + 2 * i]) < 1 and not allowed:
            blocked_by = policy
    return RateLimitResult(allowed=bool(allowed), retry_after=retry_after, states=states, blocked_by=blocked_by)


def _unavailable(check: str) -> None:
    if settings.RATELIMIT_FAIL_OPEN:
        UNAVAILABLE.labels(check=check, outcome="fail_open").inc()
        return None
    UNAVAILABLE.labels(check=check, outcome="fail_closed").inc()
    raise RateLimiterUnavailable()


# -- per organisation ---------------------------------------------------------------------------------------


def organisation_buckets(*, organisation_id: int, plan_slug: str, api_key_id: int | None = None) -> tuple[Bucket, ...]:
    """The organisation's bucket from its plan, and the key's bucket when per-key limits are on."""
    limits = plan_limits(slug=plan_slug)
    organisation_key = f"{KEY_PREFIX}:org:{organisation_id}"
    buckets = [Bucket(organisation_key, POLICY_ORGANISATION, limits.requests_per_minute, limits.burst)]
    share = settings.RATELIMIT_PER_KEY_SHARE
    if api_key_id is not None and share < 1:
        buckets.append(
            Bucket(
                f"{KEY_PREFIX}:key:{api_key_id}",
                POLICY_KEY,
                limits.requests_per_minute * share,
                max(1, math.floor(limits.burst * share)),
            )
        )
    return tuple(buckets)


def organisation_ratelimit_hit(
    *, organisation_id: int, plan_slug: str, api_key_id: int | None = None
) -> RateLimitResult | None:
    """Spend one request of the organisation's (and key's) budget; ``None`` when failing open."""
    buckets = organisation_buckets(organisation_id=organisation_id, plan_slug=plan_slug, api_key_id=api_key_id)
    return ratelimit_hit(buckets=buckets, check="organisation")


def admit(request: HttpRequest, principal: Any) -> None:
    """Admit an authenticated API request: one atomic call spends the organisation's (and key's) token and
    checks the client address's failed-authentication budget. Raises 429 when either is exhausted.

    Called by the API key authentication right after the key is verified, so every authenticated request is
    counted exactly once, whatever happens next (scope refusals included).
    """
    if not settings.RATELIMIT_ENABLED:
        return
    organisation = principal.organisation
    buckets = organisation_buckets(
        organisation_id=organisation.id, plan_slug=organisation.plan_slug, api_key_id=principal.key.id
    )
    address_bucket = auth_failure_bucket(client_address(request.META))
    request.outpost_ratelimit_admitted = True  # type: ignore[attr-defined] - counted once, even failing open
    result = ratelimit_hit(buckets=buckets, check="organisation", look=(address_bucket,))
    enforce(request, result, address_bucket)


def enforce(request: HttpRequest, result: RateLimitResult | None, address_bucket: Bucket) -> None:
    """Apply an admission's result: 429 when the organisation's (or key's) bucket or the address's
    failed-authentication bucket refused; otherwise leave the state for the response headers."""
    if result is None:
        return
    if result.blocked_by == POLICY_AUTH_FAILURES:
        REJECTED.labels(policy=POLICY_AUTH_FAILURES).inc()
        # Describe the address's budget (the one that refused), not the organisation's.
        address_only = ratelimit_hit(buckets=(address_bucket,), check="auth", spend=False)
        raise (address_only or result).error(_AUTH_MESSAGE)
    request.outpost_ratelimit = result  # type: ignore[attr-defined] - read by RateLimitHeadersMiddleware
    if not result.allowed:
        REJECTED.labels(policy=result.binding.policy).inc()
        raise result.error()


class OrganisationRateThrottle(BaseThrottle):
    """DRF throttle: one token of the caller's organisation per request; 429 ``rate_limited`` when empty.

    Runs after authentication and the scope check. Requests without an API key principal are not counted here
    (failed authentication has its own per-address limit). The result is left on the Django request for
    :class:`RateLimitHeadersMiddleware`.
    """

    def allow_request(self, request: Any, view: Any) -> bool:
        if not settings.RATELIMIT_ENABLED or getattr(request._request, "outpost_ratelimit_admitted", False):
            return True  # already admitted (and counted) by the API key authentication
        principal = request.auth
        organisation = getattr(principal, "organisation", None)
        if organisation is None:
            return True
        result = organisation_ratelimit_hit(
            organisation_id=organisation.id, plan_slug=organisation.plan_slug, api_key_id=principal.key.id
        )
        if result is None:
            return True
        request._request.outpost_ratelimit = result  # DRF's Request wraps the HttpRequest the middleware sees
        if not result.allowed:
            REJECTED.labels(policy=result.binding.policy).inc()
            raise result.error()
        return True


class RateLimitHeadersMiddleware:
    """Adds ``RateLimit-*`` headers to every response whose request went through the organisation limiter."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        result: RateLimitResult | None = getattr(request, "outpost_ratelimit", None)
        if result is not None:
            for name, value in result.headers().items():
                response[name] = value
        return response


# -- failed authentication, per client address -----------------------------------------------------------------


@lru_cache(maxsize=8)
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def client_address(meta: Mapping[str, Any]) -> str:
    """The address failed authentications are counted against (see :func:`_client_address`), remembered
    per (peer, forwarded-for) pair: parsing addresses is most of its cost and a client sends the same ones."""
    remote = meta.get("REMOTE_ADDR", "")
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    proxies = settings.RATELIMIT_TRUSTED_PROXIES
    memo_key = (remote, forwarded, tuple(proxies))
    found = _addresses.get(memo_key)
    if found is None:
        if len(_addresses) >= 4096:
            _addresses.clear()
        found = _addresses[memo_key] = _client_address(meta)
    return found


_addresses: dict[tuple[Any, Any, tuple[str, ...]], str] = {}


def _client_address(meta: Mapping[str, Any]) -> str:
    """The address failed authentications are counted against.

    ``REMOTE_ADDR``, unless that peer is in ``RATELIMIT_TRUSTED_PROXIES``: then ``X-Forwarded-For`` is read
    from the right, skipping trusted proxies, and the first other address is the client. IPv6 clients count
    per /64, the block one subscriber usually holds, so rotating addresses inside it does not help.
    """
    remote = str(meta.get("REMOTE_ADDR", ""))
    peer = _parse(remote)
    if peer is None:
        return remote or "unknown"
    trusted = _trusted_networks(tuple(settings.RATELIMIT_TRUSTED_PROXIES))
    if trusted and any(peer in network for network in trusted):
        for hop in reversed(str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")):
            address = _parse(hop)
            if address is None:
                break  # what a trusted proxy did not write; keep the last address a trusted one vouched for
            peer = address
            if not any(address in network for network in trusted):
                break
    if peer.version == 6:
        return str(ipaddress.ip_network(f"{peer}/64", strict=False))
    return str(peer)


def auth_failure_bucket(address: str) -> Bucket:
    return Bucket(
        f"{KEY_PREFIX}:authfail:{address}",
        POLICY_AUTH_FAILURES,
        settings.RATELIMIT_AUTH_FAILURES_PER_MINUTE,
        settings.RATELIMIT_AUTH_FAILURES_BURST,
    )


_AUTH_MESSAGE = "Too many failed authentication attempts from this address."


def auth_failure_record(request: HttpRequest) -> None:
    """Count one failed authentication against the client's address (429 instead of 401 if none were left)."""
    if not settings.RATELIMIT_ENABLED:
        return
    result = ratelimit_hit(buckets=(auth_failure_bucket(client_address(request.META)),), check="auth")
    if result is not None and not result.allowed:
        REJECTED.labels(policy=POLICY_AUTH_FAILURES).inc()
        raise result.error(_AUTH_MESSAGE)
