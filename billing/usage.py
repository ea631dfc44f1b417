"""Usage counting without a database write per request.

The sync endpoints add to a Redis hash per organisation per UTC day (one
pipelined round trip); :func:`usage_rollup` copies the day's totals into
``UsageDaily`` periodically (an absolute copy, so running it twice is harmless).
A Redis outage loses at most the uncounted requests, never a request.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone
from django_redis import get_redis_connection

from billing.models import UsageDaily
from tenants.context import tenant_context
from tenants.models import Organisation

logger = logging.getLogger("outpost.usage")
COUNTERS = ("pushes", "pulls", "mutations")
KEY_TTL_SECONDS = 8 * 24 * 3600
USAGE_KEY_PREFIX = "outpost:usage:"


def usage_key(organisation_id: int, day: date) -> str:
    # shared_apps.apikeys.admission builds the same key inside its Lua script.
    return f"{USAGE_KEY_PREFIX}{organisation_id}:{day:%Y%m%d}"


def usage_incr(*, organisation_id: int, **counts: int) -> None:
    """Add to today's counters (``pushes=1, mutations=500``)."""
    key = usage_key(organisation_id, timezone.now().date())
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        for name, value in counts.items():
            if value:
                pipe.hincrby(key, name, value)
        pipe.expire(key, KEY_TTL_SECONDS)
        pipe.execute()
    except Exception as exc:
        logger.warning("usage counter unavailable: %s", exc)


def usage_today(*, organisation_id: int) -> dict[str, int]:
    raw = get_redis_connection("default").hgetall(usage_key(organisation_id, timezone.now().date()))
    return {name: int(raw.get(name.encode(), 0)) for name in COUNTERS}


def _state_counts(organisation: Organisation) -> dict[str, int]:
    """Documents, devices and stored bytes, from the organisation's schema."""
    with tenant_context(organisation), connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(sum(document_count), 0) FROM syncstore_collection")
        (documents,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM syncstore_device WHERE revoked_at IS NULL")
        (devices,) = cursor.fetchone()
        cursor.execute("SELECT COALESCE(sum(size_bytes), 0) FROM syncstore_document WHERE NOT deleted")
        (storage,) = cursor.fetchone()
    return {"documents": int(documents), "devices": int(devices), "storage_bytes": int(storage)}


def usage_rollup(*, organisation: Organisation, day: date | None = None) -> UsageDaily:
    """Copy ``day``'s counters (default today) and the current state into ``UsageDaily``."""
    day = day or timezone.now().date()
    raw = get_redis_connection("default").hgetall(usage_key(organisation.pk, day))
    counters = {name: int(raw.get(name.encode(), 0)) for name in COUNTERS}
    state = _state_counts(organisation) if day == timezone.now().date() else {}
    with transaction.atomic():
        row, _ = UsageDaily.objects.select_for_update().get_or_create(organisation=organisation, date=day)
        for name, value in {**counters, **state}.items():
            # Counters only grow within a day; never let a lost Redis key shrink a stored total.
            setattr(row, name, max(getattr(row, name), value) if name in COUNTERS else value)
        row.save()
    return row


def usage_days(*, organisation: Organisation, days: int = 30) -> list[dict[str, object]]:
    """The last ``days`` days of usage (today's counters live from Redis), oldest first."""
    today = timezone.now().date()
    stored = {
        row.date: row
        for row in UsageDaily.objects.filter(organisation=organisation, date__gt=today - timedelta(days=days))
    }
    try:
        live = usage_today(organisation_id=organisation.pk)
    except Exception:
        live = {}
    series = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        row = stored.get(day)
        values = {name: getattr(row, name, 0) if row else 0 for name in COUNTERS}
        if day == today:
            values = {name: max(values[name], live.get(name, 0)) for name in COUNTERS}
        series.append({"date": day.isoformat(), **values})
    return series
