"""Per-organisation task routing and a per-organisation concurrency cap.

Every task for an organisation is sent through :func:`enqueue_for_organisation`:

* it runs in the organisation's schema (the header tenant-schemas-celery reads
  is taken from the connection, which is switched for the send);
* it goes to the organisation's plan tier queue (``tenant.free``…), or to
  ``tenant.dedicated.<slug>`` for organisations staff marked so;
* once the organisation has more tasks in flight than its plan's
  ``max_concurrent_tasks``, further tasks go to the tier's overflow queue.
  Workers consume a tier's main and overflow queues in turn, so one
  organisation's flood sits in the overflow queue while everyone else's tasks
  keep arriving on the main queue and start promptly.

At run time :class:`OrganisationTask` also takes one of the organisation's
slots (an atomic Redis counter); when all are taken, the task is put back on
the overflow queue instead of occupying a worker.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import connection
from django_redis import get_redis_connection
from tenant_schemas_celery.task import TenantTask

from billing.selectors import plan_limits
from config.sentry import tag_organisation
from tenants.context import tenant_context
from tenants.models import Organisation
from tenants.selectors import OrganisationSnapshot

logger = logging.getLogger("outpost.queues")

PENDING_TTL_SECONDS = 3600
RUNNING_TTL_SECONDS = 900
RETRY_DELAY_SECONDS = 0.5

# KEYS[1] = running counter; ARGV[1] = cap, ARGV[2] = ttl. Returns 1 when a slot was taken.
_ACQUIRE = """
local running = tonumber(redis.call('GET', KEYS[1]) or '0')
if running >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
# Never below zero, even if a counter expired while a task ran.
_RELEASE = """
local value = tonumber(redis.call('GET', KEYS[1]) or '0')
if value > 0 then redis.call('DECR', KEYS[1]) end
return 1
"""


def _redis() -> Any:
    return get_redis_connection("default")


def queue_for(organisation: Organisation | OrganisationSnapshot, *, overflow: bool = False) -> str:
    """The one routing function: an organisation's queue name."""
    if getattr(organisation, "dedicated_queue", False):
        return f"tenant.dedicated.{organisation.slug}"
    slug = organisation.plan_slug if isinstance(organisation, OrganisationSnapshot) else organisation.plan_id
    tier = plan_limits(slug=slug).queue_tier
    return f"tenant.{tier}.overflow" if overflow else f"tenant.{tier}"


def _pending_key(organisation_id: int) -> str:
    return f"outpost:tasks:pending:{organisation_id}"


def _running_key(organisation_id: int) -> str:
    return f"outpost:tasks:running:{organisation_id}"


def enqueue_for_organisation(task: Task, organisation: Organisation, *args: Any, **kwargs: Any) -> Any:
    """Send ``task`` to run in ``organisation``'s schema on its queue."""
    cap = plan_limits(slug=organisation.plan_id).max_concurrent_tasks
    try:
        redis = _redis()
        pending = redis.incr(_pending_key(organisation.pk))
        redis.expire(_pending_key(organisation.pk), PENDING_TTL_SECONDS)
    except Exception as exc:
        logger.warning("task pending counter unavailable: %s", exc)
        pending = 0
    queue = queue_for(organisation, overflow=pending > cap)
    with tenant_context(organisation):
        return task.apply_async(args=args, kwargs=kwargs, queue=queue, headers={"_organisation_id": organisation.pk})


class OrganisationTask(TenantTask):
    """Base for tasks that run inside an organisation's schema, under its concurrency cap.

    Tasks take ids, are safe to run twice, and acknowledge late (set in settings),
    so a worker lost mid-task means the task runs again rather than never.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        organisation = getattr(connection, "tenant", None)
        if organisation is None or organisation.schema_name == "public" or self.request.is_eager:
            return super().__call__(*args, **kwargs)
        limits = plan_limits(slug=organisation.plan_id)
        tag_organisation(slug=organisation.slug, plan=organisation.plan_id)
        running_key = _running_key(organisation.pk)
        redis = _redis()
        if not redis.eval(_ACQUIRE, 1, running_key, limits.max_concurrent_tasks, RUNNING_TTL_SECONDS):
            # All of this organisation's slots are busy: make room for others.
            self.apply_async(
                args=args,
                kwargs=kwargs,
                queue=queue_for(organisation, overflow=True),
                countdown=RETRY_DELAY_SECONDS,
                headers={"_schema_name": organisation.schema_name, "_organisation_id": organisation.pk},
            )
            return None
        try:
            return super().__call__(*args, **kwargs)
        finally:
            redis.eval(_RELEASE, 1, running_key)
            redis.eval(_RELEASE, 1, _pending_key(organisation.pk))
