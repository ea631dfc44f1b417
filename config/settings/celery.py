"""Celery: Redis broker, one queue per plan tier, beat schedule for the periodic jobs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from celery.schedules import crontab

from config.settings.env import env

TIERS = ("free", "pro", "business", "enterprise")
PLATFORM_QUEUE = "platform"
# Every tier has a main queue and an overflow queue for organisations that
# already have more tasks in flight than their plan's concurrency cap.
TENANT_QUEUES = [queue for tier in TIERS for queue in (f"tenant.{tier}", f"tenant.{tier}.overflow")]
ALL_QUEUES = [PLATFORM_QUEUE, *TENANT_QUEUES]


def broker_url_for(redis_url: str) -> str:
    """Celery spells a unix-socket Redis URL differently from redis-py."""
    if not redis_url.startswith("unix://"):
        return redis_url
    parts = urlsplit(redis_url)
    db = parse_qs(parts.query).get("db", ["0"])[0]
    return f"redis+socket://{parts.path}?virtual_host={db}"


def celery_settings(redis_url: str) -> dict:
    url = broker_url_for(redis_url)
    return {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}


CELERY_TASK_DEFAULT_QUEUE = PLATFORM_QUEUE
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env("CELERY_TASK_TIME_LIMIT", int, 600)
CELERY_TASK_SOFT_TIME_LIMIT = env("CELERY_TASK_SOFT_TIME_LIMIT", int, 540)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# tenant-schemas-celery caches organisation rows instead of reading one per task.
CELERY_TASK_TENANT_CACHE_SECONDS = 30
CELERY_TIMEZONE = "UTC"

CELERY_BEAT_SCHEDULE = {
    "purge-tombstones": {"task": "sync.tasks.purge_tombstones_all", "schedule": crontab(minute=17, hour=3)},
    "cleanup-devices-and-idempotency": {"task": "sync.tasks.cleanup_all", "schedule": crontab(minute=37, hour=3)},
    "rollup-usage": {"task": "billing.tasks.rollup_usage_all", "schedule": crontab(minute="*/10")},
    "report-usage-to-stripe": {"task": "billing.tasks.report_usage_all", "schedule": crontab(minute=5)},
    "cleanup-keys-and-invites": {
        "task": "shared_apps.apikeys.tasks.cleanup_expired",
        "schedule": crontab(minute=47, hour=3),
    },
    "downgrade-lapsed-subscriptions": {
        "task": "billing.tasks.downgrade_lapsed_all",
        "schedule": crontab(minute="*/15"),
    },
}
