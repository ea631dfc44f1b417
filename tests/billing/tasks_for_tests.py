"""A task only the tests use: records when and where it ran."""

from __future__ import annotations

import time

from celery import shared_task
from django.db import connection

from billing.queues import OrganisationTask


@shared_task(name="tests.record_start", base=OrganisationTask, bind=True, ignore_result=False)
def record_start(self: OrganisationTask, sleep_seconds: float) -> tuple[float, str]:
    started = time.time()
    time.sleep(sleep_seconds)
    return started, connection.schema_name
