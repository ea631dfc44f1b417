"""Prometheus metrics, with bounded label sets.

* HTTP: requests and latency by route pattern (``api/v1/sync/push``, never a
  raw path with ids), method and status.
* Sync: pushes, pulls, mutations by outcome, rejections by reason — labelled
  by plan tier, never by organisation (hundreds of organisations would mean
  hundreds of series per metric).
* Celery: tasks by queue, task name and state; durations by queue and task.

``/metrics`` needs ``Authorization: Bearer $METRICS_TOKEN``; without a token
configured it is off (404) outside DEBUG. With several gunicorn workers set
``PROMETHEUS_MULTIPROC_DIR`` so all processes' samples are aggregated. Celery
workers serve their own metrics on ``CELERY_METRICS_PORT`` when it is set.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

logger = logging.getLogger("outpost.metrics")

HTTP_REQUESTS = Counter("outpost_http_requests_total", "HTTP requests.", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "outpost_http_request_duration_seconds",
    "HTTP request latency.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SYNC_PUSHES = Counter("outpost_sync_pushes_total", "Accepted push batches.", ["tier"])
SYNC_PULLS = Counter("outpost_sync_pulls_total", "Pull pages served.", ["tier"])
SYNC_MUTATIONS = Counter("outpost_sync_mutations_total", "Pushed mutations by outcome.", ["tier", "status"])
SYNC_CONFLICTS = Counter("outpost_sync_conflicts_total", "Conflicts recorded.", ["tier"])
SYNC_REJECTIONS = Counter("outpost_sync_rejections_total", "Refused sync requests by error code.", ["tier", "code"])
CELERY_TASKS = Counter("outpost_celery_tasks_total", "Celery tasks by final state.", ["queue", "task", "state"])
CELERY_DURATION = Histogram(
    "outpost_celery_task_duration_seconds",
    "Celery task run time.",
    ["queue", "task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
_SYNC_REJECTION_CODES = {
    "batch_rejected",
    "batch_too_large",
    "quota_exceeded",
    "rate_limited",
    "device_revoked",
    "reset_required",
    "payload_too_large",
    "malformed_json",
}


def tier_of(plan_slug: str) -> str:
    from billing.selectors import plan_limits

    try:
        return plan_limits(slug=plan_slug).queue_tier
    except Exception:
        return "unknown"


def record_push_counts(*, plan_slug: str, statuses: dict[str, int], conflicts: int = 0) -> None:
    """One accepted push with its mutations counted by outcome (the compat protocols report counts)."""
    tier = tier_of(plan_slug)
    SYNC_PUSHES.labels(tier).inc()
    for status, count in statuses.items():
        if count:
            SYNC_MUTATIONS.labels(tier, status).inc(count)
    if conflicts:
        SYNC_CONFLICTS.labels(tier).inc(conflicts)


def record_pull(*, plan_slug: str) -> None:
    SYNC_PULLS.labels(tier_of(plan_slug)).inc()


class MetricsMiddleware:
    """Counts every request by route pattern; sync refusals by error code and tier."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "unmatched"
        method = request.method if request.method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD") else "OTHER"
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
        if response.status_code >= 400 and route.startswith(("api/v1/sync/", "api/v1/compat/")):
            code = getattr(response, "outpost_error_code", None)
            principal = getattr(request, "outpost_principal", None)
            if code in _SYNC_REJECTION_CODES and principal is not None:
                SYNC_REJECTIONS.labels(tier_of(principal.organisation.plan_slug), code).inc()
        return response


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return DEFAULT_REGISTRY


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        if not settings.DEBUG:
            return HttpResponse(status=404)
    else:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def connect_celery_signals() -> None:
    """Count and time tasks per queue (called from the core app's ready())."""
    from celery.signals import task_failure, task_postrun, task_prerun, task_retry, worker_ready

    started: dict[str, float] = {}

    def queue_of(task: Any) -> str:
        info = getattr(task.request, "delivery_info", None) or {}
        return str(info.get("routing_key") or info.get("exchange") or "unknown")

    @task_prerun.connect(weak=False)
    def _prerun(task_id: str, task: Any, **_: Any) -> None:
        started[task_id] = time.perf_counter()

    @task_postrun.connect(weak=False)
    def _postrun(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
        began = started.pop(task_id, None)
        queue = queue_of(task)
        CELERY_TASKS.labels(queue, task.name, state or "UNKNOWN").inc()
        if began is not None:
            CELERY_DURATION.labels(queue, task.name).observe(time.perf_counter() - began)

    @task_failure.connect(weak=False)
    def _failure(sender: Any = None, **_: Any) -> None:
        if sender is not None:
            logger.warning("task %s failed", sender.name)

    @task_retry.connect(weak=False)
    def _retry(sender: Any = None, **_: Any) -> None:
        if sender is not None:
            CELERY_TASKS.labels(queue_of(sender), sender.name, "RETRY").inc()

    @worker_ready.connect(weak=False)
    def _serve(**_: Any) -> None:
        port = os.environ.get("CELERY_METRICS_PORT")
        if port:
            from prometheus_client import start_http_server

            start_http_server(int(port), registry=_registry())
            logger.info("serving Celery metrics on :%s", port)
