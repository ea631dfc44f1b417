"""Plan limits, read through one cached selector.

Every enforcement point (rate limits, quotas, batch and document size, queue
routing, task concurrency) reads limits here. Entries live in the platform
cache and are evicted when a plan is saved (see :mod:`billing.signals`) or an
organisation changes plan (its snapshot is evicted and names the new slug).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from billing.models import Plan
from shared_apps.core.cache import cache_get_many, cache_set

PLAN_CACHE_SECONDS = 300


@dataclass(frozen=True)
class PlanLimits:
    slug: str
    name: str
    requests_per_minute: int
    burst: int
    max_documents: int
    max_devices: int
    max_document_bytes: int
    max_batch_mutations: int
    tombstone_retention_days: int
    queue_tier: str
    max_concurrent_tasks: int


def plan_cache_key(slug: str) -> str:
    return f"plan:{slug}"


# Per-process memo in front of the platform cache: plans are read on every API
# request and change a few times a year; an edit reaches every process within
# PLAN_MEMO_SECONDS (an organisation moving to another plan is immediate: its
# snapshot names the new plan).
PLAN_MEMO_SECONDS = 2.0
_memo: dict[str, tuple[float, PlanLimits]] = {}


def plan_limits(*, slug: str) -> PlanLimits:
    """The limits of plan ``slug`` (process memo, platform cache, else the database)."""
    memo = _memo.get(slug)
    now = time.monotonic()
    if memo is not None and memo[0] > now:
        return memo[1]
    limits = _plan_limits_shared(slug)
    _memo[slug] = (now + PLAN_MEMO_SECONDS, limits)
    return limits


def plan_limits_refresh(*, slug: str) -> PlanLimits:
    """Re-read plan ``slug`` through the platform cache (filling it when it is empty) and memoise it.

    The admission script reads plan entries from the platform cache itself; when it finds none, this puts
    the entry back so the next request is admitted in one round trip again.
    """
    limits = _plan_limits_shared(slug)
    _memo[slug] = (time.monotonic() + PLAN_MEMO_SECONDS, limits)
    return limits


def plan_limits_forget() -> None:
    """Drop this process's memo (plan edits in this process, tests)."""
    _memo.clear()


def _plan_limits_shared(slug: str) -> PlanLimits:
    key = plan_cache_key(slug)
    cached = cache_get_many([key]).get(key)
    if cached is not None:
        return PlanLimits(**cached)
    plan = Plan.objects.get(slug=slug)
    limits = PlanLimits(
        slug=plan.slug,
        name=plan.name,
        requests_per_minute=plan.requests_per_minute,
        burst=plan.burst,
        max_documents=plan.max_documents,
        max_devices=plan.max_devices,
        max_document_bytes=plan.max_document_bytes,
        max_batch_mutations=plan.max_batch_mutations,
        tombstone_retention_days=plan.tombstone_retention_days,
        queue_tier=plan.queue_tier,
        max_concurrent_tasks=plan.max_concurrent_tasks,
    )
    cache_set(key, asdict(limits), PLAN_CACHE_SECONDS)
    return limits


def plan_list(*, public_only: bool = False) -> list[Plan]:
    queryset = Plan.objects.order_by("sort_order", "slug")
    if public_only:
        queryset = queryset.filter(is_public=True)
    return list(queryset)
