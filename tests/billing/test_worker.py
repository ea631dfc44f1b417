"""A real Celery worker, on the real Redis, runs organisation tasks in the right schema, fairly."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from billing.queues import enqueue_for_organisation
from sync.tasks import purge_tombstones
from tenants.context import tenant_context
from tests.sync.helpers import mutation, push_ok
from tests.workers import celery_worker_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker() -> Iterator[subprocess.Popen]:
    """A worker process on the test database and Redis, consuming the tenant and platform queues."""
    with celery_worker_process(
        queues=["platform", "tenant.free", "tenant.free.overflow"],
        concurrency=4,
        include=["tests.billing.tasks_for_tests"],
    ) as process:
        yield process


def test_a_task_runs_in_its_organisations_schema(committed_organisation, worker) -> None:
    acme = committed_organisation()
    globex = committed_organisation()
    for keyed in (acme, globex):
        push_ok(keyed.client(), [mutation("gone", data={"n": 1})])
        push_ok(keyed.client(), [mutation("gone", "delete", base_version=1)])
    connection.set_schema_to_public()
    # Make acme's tombstones old enough for its plan's retention; leave globex's alone.
    with tenant_context(acme.organisation), connection.cursor() as cursor:
        cursor.execute("UPDATE syncstore_document SET updated_at = now() - interval '400 days'")
    result = enqueue_for_organisation(purge_tombstones, acme.organisation, acme.organisation.pk)
    assert result.get(timeout=30)["purged"] == 1
    with tenant_context(acme.organisation), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM syncstore_document")
        assert cursor.fetchone() == (0,)
    with tenant_context(globex.organisation), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM syncstore_document")
        assert cursor.fetchone() == (1,)


def test_one_organisations_flood_does_not_delay_another_on_the_same_tier(committed_organisation, worker) -> None:
    from tests.billing.tasks_for_tests import record_start

    flooder = committed_organisation()
    victim = committed_organisation()
    connection.set_schema_to_public()
    for _ in range(1000):
        enqueue_for_organisation(record_start, flooder.organisation, 0.05)
    sent = time.time()
    result = enqueue_for_organisation(record_start, victim.organisation, 0)
    started_at, schema = result.get(timeout=60)
    assert schema == victim.organisation.schema_name
    # 1,000 tasks of 50 ms on 4 threads would take 12 s to drain; the victim starts well before.
    assert started_at - sent < 3.0
